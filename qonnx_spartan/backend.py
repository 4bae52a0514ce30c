"""VHDL backend: one entity per layer, one ROM entity per weight memory, the top level and its test bench.

Every identifier comes from a Namer, whatever the model calls its nodes and tensors.  Files are listed in
compile order in hdl/files.txt; the simulator and the synthesis runner read that list.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2
import numpy as np

from qonnx_spartan.design import INPUT_PORTS, Design
from qonnx_spartan.memory import Memory
from qonnx_spartan.names import Namer, comment_text
from qonnx_spartan.ops.base import counter_bits
from qonnx_spartan.rom_cells import rom_cells

TOP = "qs_top"
STATIC_FILES = ("qs_arith.vhd", "qs_ram.vhd", "qs_xc7.vhd", "qs_mul_logic.vhd")
#: Simulation models of the XC7 cells ROMs in LUTs are built from (sim/ only: synthesis keeps the cells).
CELL_MODELS = "qs_xc7_cells.vhd"
FILE_LIST = "files.txt"
TB_FILE = f"{TOP}_tb.vhd"


def stream_ports(outputs: int) -> list[str]:
    """The top level's output streams' port prefixes, one per graph output: m_axis for one, m0_axis,
    m1_axis, ... for several."""
    return ["m_axis"] if outputs == 1 else [f"m{k}_axis" for k in range(outputs)]


def max_cycles(cycles: int) -> int:
    """The test benches' limit on the cycles from an inference's first input to its last output: a design
    that has not answered by then is hung."""
    return 2 * cycles + 1000


def template_environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(files("qonnx_spartan.templates")))
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def to_bits(value: int, width: int) -> str:
    """Two's complement bit string of `value`, `width` bits."""
    return format(value & ((1 << width) - 1), f"0{width}b")


def write_vivado_project(out_dir: Path, sources: list[str], part: str, clock_mhz: float) -> None:
    """OUT/vivado/build.tcl: a Vivado batch script for the part, with the clock constraint."""
    vivado = out_dir / "vivado"
    vivado.mkdir(parents=True, exist_ok=True)
    tcl = template_environment().get_template("vivado.tcl.j2")
    (vivado / "build.tcl").write_text(tcl.render(top=TOP, part=part, sources=sources, period_ns=1000.0 / clock_mhz))


def render_rom(env: jinja2.Environment, entity: str, mem: Memory, words: list[str]) -> str:
    """A ROM's VHDL: in block RAM inferred from an array; in LUTs built from XC7 cells (rom_cells.py)."""
    common = {"entity": entity, "depth": mem.depth, "width": mem.width, "abits": mem.address_bits}
    if mem.style == "block":
        return env.get_template("rom.vhd.j2").render(style=mem.style, words=words, **common)
    cells = rom_cells(np.array([[c == "1" for c in reversed(word)] for word in words], dtype=bool))

    def signal(s) -> str:
        return f"n({s[1]})" if s[0] == "n" else f"raddr({s[1]})" if s[0] == "a" else f"'{s[1]}'"

    nodes = [
        {"kind": kind, "init": f"{init:016X}", "inputs": [signal(s) for s in inputs]}
        for kind, init, inputs in cells.nodes
    ]
    return env.get_template("rom_cells.vhd.j2").render(
        nodes=nodes,
        columns=[signal(s) for s in cells.columns],
        luts=cells.luts,
        muxes=len(nodes) - cells.luts,
        **common,
    )


def generate(design: Design, out_dir: Path) -> dict:
    """Write hdl/ and sim/ under out_dir; return the VHDL names used: per layer its entity, output buffer
    instance and ROM entities, the input buffer, and each memory's style (the synth runner needs them)."""
    env = template_environment()
    hdl, sim = out_dir / "hdl", out_dir / "sim"
    hdl.mkdir(parents=True, exist_ok=True)
    sim.mkdir(parents=True, exist_ok=True)
    namer = Namer({TOP, f"{TOP}_tb", "qs_arith", "qs_ram", "qs_xc7", "qs_mul_logic", "lut6", "muxf7", "muxf8", "work", "ieee", "std"})
    order = []
    for name in STATIC_FILES:
        (hdl / name).write_text((files("qonnx_spartan.templates") / name).read_text())
        order.append(name)

    layers, stages = {}, []
    buffer_names = {design.input_buffer.tensor: namer("buf_in")}
    styles = {buffer_names[design.input_buffer.tensor]: design.input_buffer.memory.style}
    for layer in design.layers:
        entity = namer(f"l{layer.index}_{layer.name}", "layer")
        buffer_names[layer.output] = namer(f"buf_{entity}")
        styles[buffer_names[layer.output]] = layer.op.output_buffer().style
        roms = {}
        layers[layer.name] = {"entity": entity, "output_buffer": buffer_names[layer.output], "roms": roms}
        for role, mem in layer.op.weight_memories().items():
            rom = namer(f"{entity}_{role}_rom")
            roms[role] = rom
            styles[rom] = mem.style
            words = [to_bits(v, mem.width) for v in layer.op.rom_words(role)]
            (hdl / f"{rom}.vhd").write_text(render_rom(env, rom, mem, words))
            order.append(f"{rom}.vhd")
        context = layer.op.template_context()
        context.update(
            entity=entity,
            source=comment_text(layer.name),
            y_abits=layer.op.output_buffer().address_bits,
            roms=roms,
            **{f"{port}_abits": design.buffers[t].memory.address_bits for port, t in zip(INPUT_PORTS, layer.inputs)},
        )
        (hdl / f"{entity}.vhd").write_text(env.get_template(layer.op.template).render(**context))
        order.append(f"{entity}.vhd")
        rq = {"a_bits": layer.op.acc_bits(), "p_bits": layer.op.scaled_bits()} if layer.op.shares_rescale() else None
        stages.append({"inst": namer(f"u_{entity}"), "entity": entity, "output": None, "inputs": [], "rq": rq})
        layers[layer.name]["instance"] = stages[-1]["inst"]

    buffers = []
    reader_signal = {}
    schedule = design.schedule
    overlapped = schedule.overlaps
    several = len(design.output_buffers) > 1
    unload_signals = {
        id(buf): namer(f"unload{k}_raddr" if several else "unload_raddr") for k, buf in enumerate(design.output_buffers)
    }
    read_from = {}  # (layer index, port) -> the buffer or copy instance it reads
    for tensor, buf in design.buffers.items():
        bname = buffer_names[tensor]
        readers, copies = [], []
        for index, port in buf.readers:
            signal = namer(f"{stages[index]['inst']}_{port}_raddr")
            reader_signal[(index, port)] = signal
            if design.reads_copy(index, port):
                # a copy for this reader alone, written with the buffer (owned by the layer: synth.py)
                copy = namer(f"{bname}_copy_{stages[index]['inst']}")
                copies.append({"name": copy, "signal": signal})
                read_from[(index, port)] = copy
                styles[copy] = "distributed"
                layers[design.layers[index].name].setdefault("copies", []).append(copy)
                continue
            read_from[(index, port)] = bname
            active = f"busy({index}) = '1'" if overlapped else f"state = RUNNING and stage = {index}"
            readers.append({"signal": signal, "active": active})
        if id(buf) in unload_signals:
            readers.append({"signal": unload_signals[id(buf)], "active": "state /= RUNNING"})
        buffers.append(
            {
                "name": bname,
                "width": buf.memory.width,
                "depth": buf.memory.depth,
                "abits": buf.memory.address_bits,
                "style": buf.memory.style,
                "readers": readers,
                "copies": copies,
            }
        )
    for layer, stage in zip(design.layers, stages):
        stage["output"] = buffer_names[layer.output]
        stage["inputs"] = [
            {
                "port": port,
                "buffer": buffer_names[t],
                "read_from": read_from[(layer.index, port)],
                "signal": reader_signal[(layer.index, port)],
                # the engine holds copies of B's buffer (lanes on an attention product): it takes the write port
                "copied": port == "z" and bool(layer.op.buffer_copies()),
            }
            for port, t in zip(INPUT_PORTS, layer.inputs)
        ]

    io = design.io
    common = {
        "top": TOP,
        "stages": stages,
        "buffers": buffers,
        "shared_rescale": shared.template_context(to_bits) if (shared := design.shared_rescale) else None,
        "schedule": (
            {"starts": list(schedule.starts), "end": schedule.end, "bits": counter_bits(schedule.end + 1)}
            if overlapped
            else None
        ),
        "input": {
            "bits": io.input.dtype.bits,
            "signed": io.input.dtype.signed,
            "count": io.input.count,
            "buffer": buffer_names[io.input.name],
        },
        "outputs": [
            {
                "port": stream_ports(len(io.outputs))[k],
                "count_name": f"OUT_COUNT{k}",
                "bits": o.dtype.bits,
                "signed": o.dtype.signed,
                "count": o.count,
                "buffer": buffer_names[o.name],
                "reader": unload_signals[id(buf)],
            }
            for k, (o, buf) in enumerate(zip(io.outputs, design.output_buffers))
        ],
        "out_abits": max(buf.memory.address_bits for buf in design.output_buffers),
    }
    (hdl / f"{TOP}.vhd").write_text(env.get_template("top.vhd.j2").render(**common))
    order.append(f"{TOP}.vhd")
    (hdl / FILE_LIST).write_text("\n".join(order) + "\n")
    (sim / CELL_MODELS).write_text((files("qonnx_spartan.templates") / CELL_MODELS).read_text())
    # the test bench's signals for each stream (m_t* for one output, as the design's ports otherwise)
    for o in common["outputs"]:
        o["tb"] = o["port"] if several else "m"
        o["count_const"] = o["count_name"] if several else "OUT_COUNT"
        o["decimal"] = ("decimal_signed" if o["signed"] else "decimal_unsigned") if several else "decimal"
    tb = env.get_template("tb.vhd.j2")
    (sim / TB_FILE).write_text(tb.render(max_cycles=max_cycles(design.cycles()), **common))
    return {
        "top": TOP,
        "testbench": f"{TOP}_tb",
        "input_buffer": buffer_names[io.input.name],
        "layers": layers,
        "memory_styles": styles,
    }
