"""Synthesis (GHDL synth + yosys synth_xilinx): the exact parts of the estimate hold, per layer."""

from __future__ import annotations

import numpy as np
import pytest
from single_op import linear_layer, lowered_model, tensor_io

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.synth import synthesise


def narrow_product_layer(w_max: int):
    """UINT4 activations times signed weights within +-w_max and a power-of-two rescale: a 5 x 4-bit product
    (w_max 7) is 9 bits wide and goes to a DSP48E1, a 5 x 3-bit one (w_max 3) stays in LUTs."""
    rng = np.random.default_rng(5)
    k, n = 8, 4
    x_t, y_t = IntType(False, 4), IntType(True, 6)
    weights = rng.integers(-w_max, w_max + 1, (k, n))
    node = linear_layer("narrow", "x", "y", [1, 3, n], weights, x_t, y_t, rescale=Rescale(1, 3))
    return lowered_model([node], tensor_io("x", [1, 3, k], x_t), tensor_io("y", [1, 3, n], y_t), {"y": y_t})


@pytest.mark.parametrize("w_max,dsps", [(7, 1), (3, 0)])
def test_small_products_follow_the_dsp_mapping(tmp_path, w_max, dsps, ghdl, yosys):
    import json

    path = tmp_path / "narrow.onnx"
    narrow_product_layer(w_max).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    assert estimate["total"]["DSP"] == dsps
    assert synthesise(out)["total"]["DSP"] == dsps


def wide_requant_layer(rows: int, n: int, acc_shift: int = 0):
    """An IntLinear whose rescaled accumulator is wider than 32 bits (20-bit sums, 17-bit multiplier):
    synthesis must keep its datapath (GHDL once folded such saturations to a constant).  One row of one
    output gives a one-word buffer (GHDL's synthesis once asserted on it)."""
    rng = np.random.default_rng(3)
    k = 24
    x_t, y_t = IntType(True, 8), IntType(True, 8)
    weights, bias = rng.integers(-127, 128, (k, n)), rng.integers(-5000, 5000, n)
    node = linear_layer(
        "wide", "x", "y", [1, rows, n], weights, x_t, y_t, bias=bias, acc_shift=acc_shift, rescale=Rescale(98765, 27)
    )
    return lowered_model([node], tensor_io("x", [1, rows, k], x_t), tensor_io("y", [1, rows, n], y_t), {"y": y_t})


@pytest.mark.parametrize("style,rows,n", [("block", 2, 6), ("distributed", 1, 1)])
def test_synthesis_matches_exact_estimates(tmp_path, style, rows, n, ghdl, yosys):
    path = tmp_path / "wide.onnx"
    wide_requant_layer(rows, n).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style=style))
    import json

    estimate = json.loads((out / "report" / "estimate.json").read_text())
    report = synthesise(out)
    for resource in ("BRAM18", "DSP"):
        assert report["total"][resource] == estimate["total"][resource], (resource, report, estimate)
        assert report["layers"]["wide"][resource] == estimate["layers"]["wide"][resource]
    assert report["total"]["DSP"] >= 2  # the product and the rescale survive synthesis
    assert report["layers"]["wide"]["LUT"] > 20
    if style == "distributed":
        assert report["total"]["LUTRAM"] > 0 and report["total"]["BRAM18"] == 0


def rom_and_constant_layers(rng):
    """A 48 x 48 linear layer with 5-bit weights (a 2,304 x 5 ROM: yosys packs it into one RAMB18 in block
    style) and an addition of a constant whose first multiplier is even and 18 bits wide (yosys gives that
    product a second DSP; the ratios are exact in 17 bits, so the add keeps one shift and that multiplier)."""
    from qonnx_spartan.ops.elementwise import IntAdd
    from qonnx_spartan.ops.elementwise.engine import term_dsps

    k, rows = 48, 3
    x_t, h_t = IntType(True, 8), IntType(True, 8)
    weights = rng.integers(-15, 16, (k, k))
    linear = linear_layer("linear", "x", "h", [1, rows, k], weights, x_t, h_t, rescale=Rescale(1, 6))
    const = rng.integers(-100, 100, (rows, k))
    b_scale = 0.5 * 81921 / 2**17  # odd: no common factor of two to divide out
    for even in range(2**16 + 2, 2**17, 2 * 997):
        a_scale = 0.5 * even / 2**17
        add = IntAdd.make_node(
            "add", ["h"], "y", h_t, a_scale, h_t, b_scale, h_t, 0.5, h_t.lo, h_t.hi, [1, rows, k], const
        )
        from qonnx.custom_op.registry import getCustomOp

        dtype, mults = getCustomOp(add).terms()[0]
        if term_dsps(dtype.bits, mults) == 2:
            break
    else:
        raise AssertionError("no even 18-bit multiplier found")
    io = tensor_io("x", [1, rows, k], x_t), tensor_io("y", [1, rows, k], h_t)
    return lowered_model([linear, add], *io, {"h": h_t, "y": h_t})


@pytest.mark.parametrize("style", ["block", "distributed"])
def test_packed_roms_constant_products_and_odd_buffers_are_counted_exactly(tmp_path, style, ghdl, yosys):
    """BRAM18, DSP and LUTRAM of every layer equal yosys's where its mapping is not the plain one: a ROM
    packed behind both ports of a RAMB18, a constant product that takes two DSPs, a 144-word buffer."""
    import json

    path = tmp_path / "m.onnx"
    rom_and_constant_layers(np.random.default_rng(2)).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style=style))
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    report = synthesise(out)
    for layer in ("linear", "add", "top"):
        for resource in ("BRAM18", "DSP", "LUTRAM"):
            assert report["layers"][layer][resource] == estimate["layers"][layer][resource], (layer, resource)
    assert estimate["layers"]["add"]["DSP"] == 3  # two for the even 18-bit multiplier, one for the other
    if style == "block":
        assert estimate["layers"]["linear"]["BRAM18"] == 2  # one packed ROM and the output buffer
    else:  # the ROMs in LUTs, each synthesised alone: exactly the LUTs of their cells
        check_cell_roms(out, tmp_path)


def check_cell_roms(build_dir, work) -> None:
    """Each ROM in LUTs of a build, synthesised on its own, takes exactly the LUT6s the estimator counts
    (yosys keeps the cells; the flip-flops are its read register)."""
    import json
    import subprocess

    from qonnx_spartan.design import Design
    from qonnx_spartan.ghdl import GHDL_FLAGS, require_ghdl
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.synth import cell_resources, without_cell_stubs, yosys_command

    names = json.loads((build_dir / "report" / "build.json").read_text())["names"]
    checked = 0
    for layer in Design(load_model(build_dir / "model_int.onnx")).layers:
        for role, memory in layer.op.weight_memories().items():
            entity = names["layers"][layer.name]["roms"][role]
            sources = [str(build_dir / "hdl" / f) for f in ("qs_xc7.vhd", f"{entity}.vhd")]
            ghdl = [require_ghdl(), "--synth", *GHDL_FLAGS, "--out=verilog", *sources, "-e", entity]
            verilog = subprocess.run(ghdl, cwd=work, capture_output=True, text=True, check=True).stdout
            (work / "rom.v").write_text(without_cell_stubs(verilog))
            script = [
                "read_verilog rom.v",
                f"synth_xilinx -family xc7 -top {entity} -noiopad",
                "tee -q -o rom.json stat -json",
            ]
            (work / "rom.ys").write_text("\n".join(script) + "\n")
            subprocess.run([*yosys_command(), "-q", "rom.ys"], cwd=work, check=True, capture_output=True)
            cells = json.loads((work / "rom.json").read_text())["design"]["num_cells_by_type"]
            assert cell_resources(cells)["LUT"] == memory.cell_luts > 0, (entity, cells)
            assert cells.get("MUXF7", 0) > 0
            checked += 1
    assert checked == 2  # the weights and the added constants


def test_a_layer_synthesised_alone_counts_as_in_the_whole_design(tmp_path, ghdl, yosys):
    """synthesise(layers=...) (calibration/sweep.py --changed-layers): the other layers are empty stubs, and
    with the hierarchy kept each synthesised layer's count is the one it has in the whole design, a layer
    with a block ROM too (whose style is set only when the layer is synthesised)."""
    path = tmp_path / "m.onnx"
    rom_and_constant_layers(np.random.default_rng(2)).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="block"))
    whole = synthesise(out)["layers"]
    for layer in ("linear", "add"):
        alone = synthesise(out, layers={layer})["layers"]
        assert alone[layer] == whole[layer], layer
        other = ({"linear", "add"} - {layer}).pop()
        assert alone[other]["DSP"] == 0 < whole[other]["DSP"]  # a stub: no logic


def test_layers_synthesised_apart_join_into_the_whole_designs_netlist(tmp_path, ghdl):
    """GHDL synthesises each layer apart and the top level over stubs (it fails on a whole w24 d64
    Transformer); the joined netlist has every module of the one-run netlist, the same up to GHDL's net
    numbers and source comments."""
    import re
    import subprocess

    from qonnx_spartan.backend import TOP
    from qonnx_spartan.ghdl import GHDL_FLAGS, design_sources, require_ghdl
    from qonnx_spartan.synth import corrected_netlist, ghdl_verilog, verilog_modules, without_cell_stubs

    def normalised(module: str) -> str:
        numbers: dict[str, str] = {}
        module = re.sub(r"\n *(/\*.*?\*/)?(?=\n)", "", module)
        return re.sub(r"\bn\d+(?=_|\b)", lambda m: numbers.setdefault(m.group(0), f"n{len(numbers)}"), module)

    path = tmp_path / "m.onnx"
    rom_and_constant_layers(np.random.default_rng(2)).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    whole = subprocess.run(
        [require_ghdl(), "--synth", *GHDL_FLAGS, "--out=verilog", *map(str, design_sources(out)), "-e", TOP],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {name: normalised(text) for name, text in verilog_modules(without_cell_stubs(corrected_netlist(whole))).items()}
    joined = {name: normalised(text) for name, text in verilog_modules(ghdl_verilog(out, tmp_path)).items()}
    assert len(expected) >= 6 and joined == expected  # top, 2 layers, 2 ROMs, buffers


def test_wide_rom_literals_reach_yosys_in_pieces():
    """GHDL writes a ROM's initial value as one literal; over 64 K characters yosys's lexer fails on it."""
    from qonnx_spartan.synth import LITERAL_PIECE, corrected_netlist

    bits = "01" * 40000
    verilog = f'  rom = "{bits}"; // (isignal)\n  short = "0101";\n'
    split = corrected_netlist(verilog)
    pieces = [p.split("'b")[1] for p in split.split("{")[1].split("}")[0].split(", ")]
    assert "".join(pieces) == bits and max(map(len, pieces)) <= LITERAL_PIECE
    assert "short = 4'b0101;" in split


def test_verilog_corrections():
    """GHDL 2.0's Verilog slips, each made right: a std_logic constant written as a string, an arithmetic
    shift written as a logical one, a renaming signal written as a loop."""
    from qonnx_spartan.synth import corrected_netlist

    netlist = "\n".join(
        [
            '  localparam [3:0] n1_o = "1011";',
            "  assign n2_o = $signed(sum) >> 31'b0000000000000000000000000000001;",
            "  assign n3_o = sum >> 2'b01;",
            "  assign buf_rdata = buf_rdata; // (signal)",
            "  assign buf_raddr = other; // (signal)",
            '      $fatal(1, "assertion failure n9");',
            "",
        ]
    )
    fixed = corrected_netlist(netlist).splitlines()
    assert fixed == [
        "  localparam [3:0] n1_o = 4'b1011;",
        "  assign n2_o = $signed(sum) >>> 31'b0000000000000000000000000000001;",
        "  assign n3_o = sum >> 2'b01;",
        "  assign buf_raddr = other; // (signal)",
        '      $fatal(1, "assertion failure n9");',
    ]
    with pytest.raises(RuntimeError, match="signed sdiv"):
        corrected_netlist("  assign n4_o = a / b; // sdiv\n")


TABLE_AND_SHIFT = """
library ieee; use ieee.std_logic_1164.all; use ieee.numeric_std.all;
entity table_and_shift is
  port (sel : in unsigned(1 downto 0); a : in signed(7 downto 0);
        entry : out std_logic_vector(5 downto 0); shifted : out signed(7 downto 0));
end entity;
architecture rtl of table_and_shift is
  type table_t is array (0 to 3) of std_logic_vector(5 downto 0);
  constant TABLE : table_t := ("101101", "010011", "111000", "000111");
begin
  entry <= TABLE(to_integer(sel));
  shifted <= shift_right(a, 2);
end architecture;
"""


def test_yosys_reads_ghdls_netlist_as_the_vhdl_means(tmp_path, ghdl, yosys):
    """End to end: a constant table and an arithmetic shift through GHDL's Verilog into yosys, evaluated
    by yosys's SAT solver for every table index and a negative operand."""
    import re
    import subprocess

    from qonnx_spartan.ghdl import GHDL_FLAGS, require_ghdl
    from qonnx_spartan.synth import corrected_netlist, yosys_command

    (tmp_path / "t.vhd").write_text(TABLE_AND_SHIFT)
    netlist = subprocess.run(
        [require_ghdl(), "--synth", *GHDL_FLAGS, "--out=verilog", "t.vhd", "-e", "table_and_shift"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout
    (tmp_path / "t.v").write_text(corrected_netlist(netlist))
    for sel, expected in enumerate(("101101", "010011", "111000", "000111")):
        script = f"read_verilog t.v; proc; sat -set sel {sel} -set a 8'b10010100 -show entry,shifted"
        log = subprocess.run([*yosys_command(), "-p", script], cwd=tmp_path, capture_output=True, text=True).stdout
        values = dict(re.findall(r"\\(entry|shifted)\s+\S+\s+\S+\s+([01]+)", log))
        assert values == {"entry": expected, "shifted": "11100101"}, log[-800:]


def yosys_counts(verilog: str, work, prepare: list[str]) -> tuple[int, int]:
    """(DSP pre-adders, flip-flops) of the design after `prepare` and synth_xilinx."""
    import json
    import subprocess

    from qonnx_spartan.backend import TOP
    from qonnx_spartan.synth import FF_CELLS, yosys_command

    (work / "design.v").write_text(verilog)
    script = ["read_verilog design.v", *prepare, f"synth_xilinx -family xc7 -top {TOP}"]
    script += ["tee -q -o pre.txt select -count t:DSP48E1 r:USE_DPORT=TRUE %i", "tee -q -o stat.json stat -json"]
    (work / "s.ys").write_text("\n".join(script) + "\n")
    subprocess.run([*yosys_command(), "-q", "s.ys"], cwd=work, check=True, capture_output=True)
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    return int((work / "pre.txt").read_text().split()[0]), sum(cells.get(t, 0) for t in FF_CELLS)


@pytest.mark.parametrize("acc_shift", [0, 2])
def test_an_accumulator_that_feeds_the_rescale_survives_synthesis(tmp_path, acc_shift, ghdl, yosys):
    """One lane and a rescale on a DSP: yosys 0.70 takes the accumulator's adder as the rescale DSP's
    pre-adder and drops the accumulator (the netlist no longer sums).  synth marks the accumulator keep:
    no pre-adder is packed, and the accumulator is the product DSP's P register (acc_shift 0) or
    flip-flops in the fabric (a shifted product does not fit the DSP's post-adder)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from qonnx_spartan.synth import ghdl_verilog, kept_registers

    path = tmp_path / "wide.onnx"
    wide_requant_layer(2, 6, acc_shift).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    op = getCustomOp(ModelWrapper(str(out / "model_int.onnx")).graph.node[0])
    assert op.lanes() == 1 and op.rescales() and op.accumulator_in_dsp() == (acc_shift == 0)
    verilog = ghdl_verilog(out, tmp_path)
    keep = [f"setattr -set keep 1 {wire}" for wire in kept_registers(verilog)]
    assert len(keep) == 1  # the one MAC's accumulator
    plain, kept = yosys_counts(verilog, tmp_path, []), yosys_counts(verilog, tmp_path, keep)
    if plain[0] == 0:
        print("this yosys no longer packs the accumulator as a pre-adder: the keep workaround is a no-op")
    else:
        assert plain[0] == 1
        assert kept[1] - plain[1] == (0 if op.accumulator_in_dsp() else op.accumulator_register_bits())
    assert kept[0] == 0
    synthesise(out)  # refuses a netlist with a pre-adder


def test_logic_products_cost_what_the_table_says(yosys):
    """A product kept out of the DSPs costs the LUTs calibration/logic_products.py measured for its operand
    form (the table the estimator reads); the forms are the MAC's, an unsigned operand zero-extended."""
    import sys
    from pathlib import Path

    from qonnx_spartan.ops.mac.engine import logic_product_luts

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calibration"))
    from logic_products import forms, measure, product_key

    chosen = [(3, False, 3, True), (4, False, 3, True), (2, True, 2, True), (5, False, 2, True)]
    assert all(form in forms() for form in chosen)
    measured = measure(chosen)
    for xb, xs, bb, bs in chosen:
        assert logic_product_luts(IntType(xs, xb), bb, bs) == measured[product_key(xb, xs, bb, bs)]
    assert len(set(measured.values())) > 1  # the forms differ, unlike a count of partial products


def test_distributed_buffers_cost_what_the_table_says(ghdl, yosys):
    """A distributed buffer's LUTRAM and the logic around it (read multiplexer, write decoder) equal the
    table calibration/lutram_periphery.py measured and the estimator reads, including shapes where the
    logic does not grow with the width (160 x 4 takes more than 160 x 8), 84 x 3, where yosys takes
    RAM32Ms that a cost rule would not, and 96 x 13, a width between powers of two (RAM32Ms again)."""
    import sys
    from pathlib import Path

    from qonnx_spartan.memory import Memory, lutram_periphery_luts

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calibration"))
    from lutram_periphery import measure

    shapes = [(384, 8), (160, 4), (160, 8), (512, 8), (96, 3), (96, 13)]
    measured = measure(shapes)
    for depth, width in shapes:
        lutram, logic = measured[f"{depth}x{width}"]
        assert lutram_periphery_luts(depth, width) == logic, (depth, width)
        assert Memory(depth, width, "distributed").lutram == lutram, (depth, width)
    assert Memory(84, 3, "distributed").lutram == measured["96x3"][0] == 12  # rows of 32 words, as 96 x 3
    assert lutram_periphery_luts(384, 8) > lutram_periphery_luts(512, 8)  # not a function of the size alone


def bias_bits_layer(bias):
    """An IntLinear whose product enters 5 bits up (acc_shift 5), so the accumulator's 5 low bits only
    ever load the bias of the output that starts: the bias alone decides which of them synthesis keeps."""
    rng = np.random.default_rng(8)
    k, n = 6, len(bias)
    x_t, y_t = IntType(True, 6), IntType(True, 6)
    weights = rng.integers(-31, 32, (k, n))
    node = linear_layer("lin", "x", "y", [1, 2, n], weights, x_t, y_t, bias=bias, acc_shift=5, rescale=Rescale(1, 9))
    return lowered_model([node], tensor_io("x", [1, 2, k], x_t), tensor_io("y", [1, 2, n], y_t), {"y": y_t})


def test_accumulator_low_bits_are_the_distinct_bias_bit_patterns(tmp_path, ghdl, yosys):
    """Of the accumulator bits below acc_shift, synthesis drops those whose bias bit is 0 for every output
    and merges those that load the same bit pattern over the outputs; the rescale register (a power of two:
    no DSP) holds the same bits and loses the same.  Five distinct patterns against one pattern of ones
    plus one repeated pattern (bits 0 and 3 alike): three flip-flops apart in each, as counted."""
    import json

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    counts = {}
    for name, bias in (("distinct", [1, 2, 4, 8, 16, 0]), ("merged", [9, 9, 1, 1, 9, 1])):
        path = tmp_path / f"{name}.onnx"
        bias_bits_layer(bias).save(str(path))
        out = tmp_path / name
        build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="block", lanes=1))
        op = getCustomOp(ModelWrapper(str(out / "model_int.onnx")).graph.node[0])
        assert not op.scale_on_dsp()
        synthesise(out)
        measured = json.loads((out / "report" / "synth.json").read_text())["layers"]["lin"]["FF"]
        counts[name] = (op.acc_bits(), op.registers(), measured)
    (acc_bits, distinct, ff_distinct), (acc_bits_merged, merged, ff_merged) = counts["distinct"], counts["merged"]
    assert acc_bits == acc_bits_merged
    assert (distinct["accumulators"], merged["accumulators"]) == (acc_bits - 5 + 5, acc_bits - 5 + 2)
    assert distinct["scaled"] - merged["scaled"] == 3
    assert ff_distinct - ff_merged == sum(distinct.values()) - sum(merged.values()) == 6


def test_block_memories_take_the_block_rams_yosys_chooses(tmp_path, yosys):
    """A memory in block RAM costs what yosys's memory_libmap chooses (Memory.block_geometry), RAMB18s and
    whether a multiplexer joins address blocks.  ROMs: 1,100 x 12 is three 512-word blocks side by side in
    one RAMB18, 1,100 x 14 takes a RAMB36, 1,400 x 24 a RAMB36 of three blocks, 1,700 x 10 a RAMB36 at 2K
    x 18 - shapes a bits-per-RAMB18 rule got wrong both ways.  Buffers share a word only in whole 9-bit
    bytes: 768 x 22 is one RAMB36 with no multiplexer (the rule before charged one), 1,536 x 40 two RAMB36s
    of three 45-bit blocks (five RAMB18s before), 1,100 x 19 three 2K x 9 RAMB18s, 1,536 x 36 three 512 x
    36 RAMB18s behind a multiplexer."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calibration"))
    from block_packing import rule, synthesised

    shapes = {
        ("rom", 1100, 12): (1, True),
        ("rom", 1100, 14): (2, False),
        ("rom", 1400, 24): (2, True),
        ("rom", 1700, 10): (2, False),
        ("ram", 768, 22): (2, False),
        ("ram", 1536, 40): (4, True),
        ("ram", 1100, 19): (3, False),
        ("ram", 1536, 36): (3, True),
    }
    for shape, (rams, joined) in shapes.items():
        assert rule(*shape) == (rams, joined), shape
        bram18, luts = synthesised(*shape, tmp_path)
        assert (bram18, luts > 0) == (rams, joined), (shape, bram18, luts)


@pytest.mark.brevitas
def test_attention_matmuls_keep_the_registers_counted(tmp_path, ghdl, yosys):
    """The two matrix products of a two-head attention core, synthesised: their flip-flops are the ones
    MacOp.registers() names (block memories: no read registers outside the RAMs), including the output
    address generator's h-level register, whose bits below its stride's lowest set bit synthesis drops."""

    from brevitas_models import export, make_attention_core

    from qonnx_spartan.design import Design
    from qonnx_spartan.model_file import load_model

    window, d_model = 4, 8
    path = export(make_attention_core(window, d_model, 2, 6, po2=True), tmp_path / "core.onnx", (1, window, d_model))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, memory_style="block", lanes=1))
    measured = synthesise(out)["layers"]
    products = [
        layer
        for layer in Design(load_model(out / "model_int.onnx")).layers
        if layer.op.onnx_node.op_type == "IntMatMul"
    ]
    assert len(products) == 2 and any(layer.op.output_head_zero_bits() for layer in products)
    for layer in products:
        assert measured[layer.name]["FF"] == sum(layer.op.registers().values()), layer.name


def test_lut_attribution_accounts_for_every_lut(tmp_path, ghdl, yosys):
    """calibration/lut_attribution.py shares each logic LUT among the registers it feeds: the shares add up
    to the logic LUTs `synth` counts, and the output word and an address are among the signals."""
    import sys
    from pathlib import Path

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.synth import synthesise

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calibration"))
    from lut_attribution import attribute

    path = tmp_path / "m.onnx"
    wide_requant_layer(3, 4).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    report = synthesise(out)
    modules = attribute(out)  # every module is instantiated once here
    logic_luts = report["total"]["LUT"] - report["total"]["LUTRAM"]  # memory LUTs are not attributed
    assert round(sum(sum(signals.values()) for signals in modules.values())) == logic_luts
    layer = next(signals for module, signals in modules.items() if module.startswith("l0_wide"))
    assert {"out_data", "a_addr"} <= set(layer)  # the accumulator is the product DSP's P register here
