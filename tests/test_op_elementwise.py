"""IntAdd and IntAffine: make_node's integer maps against the real-valued computation they stand for, and
single-op designs bit-exact in GHDL against the reference, in the cycles the design predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from exact import INT8, INT16, UINT8, clamp, extremes, fits_signed, half_even, shift_rounded
from op_modules import Extreme
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, copy_layer, lowered_model, reversed_layer, tensor_io

from qonnx_spartan.design import Design
from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops import IntAdd, IntAffine
from qonnx_spartan.ops.elementwise.engine import Elementwise, fixed_point, signed_bits, term_dsps, word_bits
from qonnx_spartan.ops.elementwise.int_add import TERM_ERROR_LSB
from qonnx_spartan.ops.elementwise.int_affine import OFFSET_LIMIT

INT18 = IntType(True, 18)
TYPES = [IntType(signed, bits) for bits in range(2, 9) for signed in (True, False)]


def exact_elementwise(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs, {"sums": every sum, "products": every product}) of IntAdd / IntAffine in Python integers;
    the widths the op declares are checked."""
    channels, shift = op.channels, op.get_nodeattr("shift")
    lo, hi = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi")
    if op.onnx_node.op_type == "IntAdd":
        b = [int(v) for v in op.const().reshape(-1)] if op.has_const() else inputs[1]
        ma, mb = op.get_nodeattr("mult_a"), op.get_nodeattr("mult_b")
        products = [[a * ma, bv * mb] for a, bv in zip(inputs[0], b)]
        offsets = [0] * channels
        registers = [v for p in products for v in p]  # each product's register holds it before its shift
        sa, sb = op.product_shifts()
        products = [[pa << sa, pb << sb] for pa, pb in products]
    else:
        mult = [int(v) for v in op.mult()]
        products = [[x * mult[i % channels]] for i, x in enumerate(inputs[0])]
        offsets = [int(v) for v in op.sum_offsets()]  # the hardware's: the rounding half included
        registers = [v for p in products for v in p]
    sums = [sum(p) + offsets[i % channels] for i, p in enumerate(products)]
    rounding = shift_rounded if op.rounding_half() else half_even
    outputs = [clamp(rounding(s, shift), lo, hi) for s in sums]
    flat = [v for p in products for v in p]
    sum_lo, sum_hi = op.sum_range()
    assert all(sum_lo <= v <= sum_hi for v in sums + flat)
    assert all(fits_signed(v, op.sum_bits()) for v in sums + flat)
    terms = op.terms()
    for i, (dtype, mults) in enumerate(terms):  # each product's register: operand (signed) + multiplier bits
        width = dtype.bits + (0 if dtype.signed else 1) + word_bits(mults)
        assert all(fits_signed(v, width) for v in registers[i :: len(terms)])
    return outputs, {"sums": sums, "products": flat}


RECOMPUTE = {Elementwise: exact_elementwise}


def add_design(in_type: IntType, out_type: IntType, scales, const_type: IntType | None):
    """x*sa + b*sb with b a copy of x, or an alternating extreme constant; scale ratios that need the
    widest multipliers."""
    shape = [1, 4, 6]
    if const_type is None:
        nodes, inputs, const, b_type = [copy_layer("second", "x", "b", shape, in_type)], ["x", "b"], None, in_type
    else:
        nodes, inputs, b_type = [], ["x"], const_type
        const = np.array(extremes(const_type, 24)[2]).reshape(shape[1:])
    add = IntAdd.make_node(
        "add",
        inputs,
        "y",
        in_type,
        scales[0],
        b_type,
        scales[1],
        out_type,
        scales[2],
        out_type.lo,
        out_type.hi,
        shape,
        const=const,
    )
    dtypes = {"y": out_type, **({"b": in_type} if const is None else {})}
    return lowered_model([*nodes, add], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), dtypes)


def affine_design(in_type: IntType, out_type: IntType):
    """Per-channel gains from tiny to the widest multiplier, both signs, and offsets up to the 32-bit limit."""
    shape = [1, 3, 4]
    gain = np.array([300.7, -300.7, 1e-4, -1.0])
    bias = np.array([3e4, -3e4, 1.5e4, 0.0])
    node = IntAffine.make_node("bn", "x", "y", in_type, 1.0, gain, bias, out_type, 1.0, out_type.lo, out_type.hi, shape)
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


#: tests/test_overflow.py
EXTREMES = {
    "add-int16": Extreme(lambda: add_design(INT16, INT16, (0.9999, 0.7777, 1.0), None)),
    "add-uint8-constant-int16": Extreme(lambda: add_design(UINT8, UINT8, (1.0, 0.00913, 1.7), INT16)),
    # an accumulator and a quantised tensor (or constant) at ratios ~2**-10 and ~1 to the output: each term
    # with its own precision, the products shifted to one wide sum
    "add-int18-ratios-apart": Extreme(lambda: add_design(INT18, INT8, (0.9923, 0.9923 * 2**-10, 1.0), None)),
    "add-int18-constant-int8-ratios-apart": Extreme(
        lambda: add_design(INT18, INT8, (172.4 / 2**17, 0.9923, 1.0), INT8)
    ),
    "affine-int16": Extreme(lambda: affine_design(INT16, INT16)),
}


def run(node, inputs: dict[str, np.ndarray]) -> np.ndarray:
    context = {name: np.asarray(v, dtype=np.float32) for name, v in inputs.items()}
    getCustomOp(node).execute_node(context, None)
    return context[node.output[0]].astype(np.int64)


def random_ints(rng, t: IntType, shape) -> np.ndarray:
    return rng.integers(t.lo, t.hi + 1, size=shape)


def quantised(y_real: np.ndarray, out_scale: float, t: IntType) -> np.ndarray:
    """What the integer op approximates: the real result on the output grid, clipped to its type."""
    return np.clip(np.round(y_real / out_scale), t.lo, t.hi).astype(np.int64)


def is_power_of_two(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def random_scale(rng, po2: bool) -> float:
    return 2.0 ** int(rng.integers(-8, 2)) if po2 else float(2.0 ** rng.uniform(-8, 1))


# -- make_node against the real-valued maps (numpy) ---------------------------------------------------
@pytest.mark.parametrize("po2", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_int_add_within_one_lsb_of_real_sum(seed, po2):
    rng = np.random.default_rng(seed)
    a_type, b_type, out_type = (TYPES[i] for i in rng.integers(len(TYPES), size=3))
    a_scale, b_scale, out_scale = (random_scale(rng, po2) for _ in range(3))
    shape = [1, 3, 5]
    node = IntAdd.make_node(
        "add", ["a", "b"], "y", a_type, a_scale, b_type, b_scale, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    op = getCustomOp(node)
    mult_a, mult_b, shift = (op.get_nodeattr(k) for k in ("mult_a", "mult_b", "shift"))
    # no more DSPs than multipliers of MULTIPLIER_BITS over one shift take (wider ones only buy precision)
    narrow, _ = fixed_point(*((s / out_scale, 2**MULTIPLIER_BITS) for s in (a_scale, b_scale)))
    assert op.dsps() <= sum(term_dsps(signed_bits(t), m.reshape(1)) for t, m in zip((a_type, b_type), narrow))
    a, b = random_ints(rng, a_type, (200, *shape[1:])), random_ints(rng, b_type, (200, *shape[1:]))
    error = np.abs(run(node, {"a": a, "b": b}) - quantised(a * a_scale + b * b_scale, out_scale, out_type))
    if po2:
        assert error.max() == 0
        assert is_power_of_two(mult_a) and is_power_of_two(mult_b)
        assert shift == 0 or min(mult_a, mult_b) == 1  # common factors of two divided out
    else:
        assert error.max() <= 1


def test_int_add_of_an_accumulator_keeps_its_small_ratio_precise():
    """A residual add of an unquantised accumulator (INT17, ratio ~2**-10 to the output) and a quantised
    tensor (ratio ~1): over its operand's whole range each term moves the sum by at most TERM_ERROR_LSB / 2
    (17-bit multipliers over one shift would leave the accumulator's 8 bits, 0.2 LSB off here), each product
    shifted to the common shift, with no more DSPs than the narrow multipliers take."""
    acc, act, out = IntType(True, 17), IntType(True, 6), IntType(True, 6)
    ratio = 172.4 / 2**17  # as the 2-layer corpus Transformer's first residual add has (0.2 LSB off before)
    node = IntAdd.make_node("add", ["a", "b"], "y", acc, ratio, act, 0.9923, out, 1.0, out.lo, out.hi, [1, 4])
    op = getCustomOp(node)
    mult_a, mult_b, shift = (op.get_nodeattr(k) for k in ("mult_a", "mult_b", "shift"))
    shift_a, shift_b = op.product_shifts()
    assert shift_a != shift_b  # each term its own precision
    assert abs(ratio - mult_a * 2**shift_a / 2**shift) * 2**16 <= TERM_ERROR_LSB / 2
    assert abs(0.9923 - mult_b * 2**shift_b / 2**shift) * 32 <= TERM_ERROR_LSB / 2
    narrow, _ = fixed_point((ratio, 2**MULTIPLIER_BITS), (0.9923, 2**MULTIPLIER_BITS))
    assert op.dsps() <= sum(term_dsps(signed_bits(t), m.reshape(1)) for t, m in zip((acc, act), narrow))
    a = np.array([[acc.lo, acc.hi, 12345, -777]])
    b = np.array([[act.hi, act.lo, -3, 31]])
    assert np.array_equal(run(node, {"a": a, "b": b}), quantised(a * ratio + b * 0.9923, 1.0, out))


def test_int_add_keeps_one_shift_where_its_multipliers_are_precise():
    """Power-of-two ratios, and quantised tensors whose 17-bit multipliers hold the ratios within
    TERM_ERROR_LSB, keep one common shift and no product shifts (the designs of such models unchanged)."""
    t = IntType(True, 4)
    for scales in ((0.5, 0.25, 0.5), (0.3, 0.7, 0.5)):
        node = IntAdd.make_node("add", ["a", "b"], "y", t, scales[0], t, scales[1], t, scales[2], -8, 7, [1, 2])
        op = getCustomOp(node)
        assert op.product_shifts() == [0, 0]


def test_int_add_constant_is_broadcast_over_the_batch_and_held_in_its_rom():
    rng = np.random.default_rng(0)
    a_type, c_type, out_type = IntType(True, 6), IntType(False, 5), IntType(True, 8)
    shape = [1, 4, 3]
    const = random_ints(rng, c_type, shape[1:])
    node = IntAdd.make_node(
        "pos", ["a"], "y", a_type, 0.05, c_type, 0.02, out_type, 0.04, out_type.lo, out_type.hi, shape, const=const
    )
    op = getCustomOp(node)
    assert op.rom_words("c") == const.reshape(-1).tolist()
    assert (op.weight_memories()["c"].depth, op.weight_memories()["c"].width) == (const.size, c_type.bits)
    a = random_ints(rng, a_type, (50, *shape[1:]))
    error = np.abs(run(node, {"a": a}) - quantised(a * 0.05 + const * 0.02, 0.04, out_type))
    assert error.max() <= 1


def test_int_add_reads_its_inputs_in_address_order_whatever_their_writers_shape():
    """A buffer keeps its writer's shape: QuantMultiheadAttention's output, written (batch, T, 1, D) and read
    through a transpose that keeps the order, is added to a (batch, T, D) tensor element by element, as the
    hardware reads both buffers, for every batch size (numpy would broadcast them into (batch, T, T, D))."""
    t = IntType(True, 8)
    node = IntAdd.make_node("add", ["a", "b"], "y", t, 1.0, t, 1.0, IntType(True, 10), 1.0, -512, 511, [1, 6, 8])
    rng = np.random.default_rng(0)
    for batch in (1, 16):
        a, b = random_ints(rng, t, (batch, 6, 8)), random_ints(rng, t, (batch, 6, 1, 8))
        y = run(node, {"a": a, "b": b})
        assert y.shape == (batch, 6, 8)
        assert np.array_equal(y, a + b.reshape(batch, 6, 8))


def test_int_add_refuses_a_constant_outside_its_type():
    with pytest.raises(ValueError, match="does not fit"):
        IntAdd.make_node(
            "pos",
            ["a"],
            "y",
            IntType(True, 4),
            1.0,
            IntType(True, 4),
            1.0,
            IntType(True, 4),
            1.0,
            -8,
            7,
            [1, 2],
            const=np.array([3, 8]),
        )


@pytest.mark.parametrize("po2", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_int_affine_within_one_lsb_of_real_map(seed, po2):
    rng = np.random.default_rng(100 + seed)
    in_type, out_type = (TYPES[i] for i in rng.integers(len(TYPES), size=2))
    in_scale, out_scale = random_scale(rng, po2), random_scale(rng, po2)
    shape = [1, 2, 3, 4]
    channels = shape[-1]
    if po2:  # dyadic gains and biases: the integer map is then exact
        gain = rng.choice([-1, 1], channels) * 2.0 ** rng.integers(-3, 3, channels)
        bias = rng.integers(-16, 17, channels) * 2.0 ** rng.integers(-6, 0, channels)
    else:
        gain = rng.normal(size=channels)  # negative gains too
        bias = rng.normal(size=channels) * 4
    node = IntAffine.make_node(
        "bn", "x", "y", in_type, in_scale, gain, bias, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    op = getCustomOp(node)
    assert np.abs(op.mult()).max() < 2**MULTIPLIER_BITS
    x = random_ints(rng, in_type, (100, *shape[1:]))
    error = np.abs(run(node, {"x": x}) - quantised(gain * x * in_scale + bias, out_scale, out_type))
    assert error.max() == 0 if po2 else error.max() <= 1


def test_multipliers_cost_a_dsp_only_when_they_are_not_powers_of_two():
    int8, shape = IntType(True, 8), [1, 16]
    po2 = IntAdd.make_node("add", ["a", "b"], "y", int8, 0.5, int8, 0.25, int8, 0.5, int8.lo, int8.hi, shape)
    scaled = IntAdd.make_node("add", ["a", "b"], "y", int8, 0.3, int8, 0.7, int8, 0.5, int8.lo, int8.hi, shape)
    assert getCustomOp(po2).logic_resources()["DSP"] == 0
    assert getCustomOp(scaled).logic_resources()["DSP"] == 2
    bn = IntAffine.make_node(
        "bn", "x", "y", int8, 0.1, np.linspace(-1, 1, 16), np.zeros(16), int8, 0.1, int8.lo, int8.hi, shape
    )
    assert getCustomOp(bn).logic_resources()["DSP"] == 1


def test_int_affine_keeps_offsets_in_32_bit_integers():
    """A tiny gain next to a large bias: the offset, not the multiplier, limits the shift."""
    in_type, out_type = IntType(True, 8), IntType(True, 24)
    gain, bias = np.array([1e-3, -2e-3]), np.array([3e5, -1e5])
    node = IntAffine.make_node(
        "bn", "x", "y", in_type, 1.0, gain, bias, out_type, 1.0, out_type.lo, out_type.hi, [1, 2]
    )
    op = getCustomOp(node)
    assert np.abs(op.offsets()).max() < OFFSET_LIMIT
    assert np.abs(op.mult()).max() < 2 ** (MULTIPLIER_BITS - 1)
    x = np.stack(np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)), -1).reshape(-1, 2)
    assert np.abs(run(node, {"x": x}) - quantised(gain * x + bias, 1.0, out_type)).max() <= 1


# -- single-op designs in GHDL ------------------------------------------------------------------------
def input_vectors(t: IntType, shape, count: int, seed: int) -> np.ndarray:
    """`count` random inputs, then all minimum, all maximum and alternating minimum/maximum."""
    item = shape[1:]
    size = int(np.prod(item))
    alternating = np.where(np.arange(size) % 2, t.hi, t.lo).reshape(item)
    extremes = np.stack([np.full(item, t.lo), np.full(item, t.hi), alternating])
    return np.concatenate([random_ints(np.random.default_rng(seed), t, (count, *item)), extremes])


def check_in_ghdl(model, tmp_path: Path, vectors: np.ndarray, out_type: IntType, memory_style: str = "auto"):
    """Bit-exact against the reference, in exactly the predicted cycles, saturating both ways."""
    report = build_and_simulate(model, tmp_path, vectors, memory_style)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:5]
    assert report.cycles_per_inference == Design(model).cycles()
    assert report.reference.min() == out_type.lo and report.reference.max() == out_type.hi


# a type, b type, scales (a, b, out), out type, whether the second operand reverses and narrows the input
TWO_INPUT_CASES = [
    (IntType(True, 8), IntType(True, 8), (0.05, 0.03, 0.1), IntType(True, 5), False),
    (IntType(True, 4), IntType(False, 3), (2**-2, 2**-1, 2**-2), IntType(False, 4), True),
]


@pytest.mark.parametrize("a_type,b_type,scales,out_type,reverse", TWO_INPUT_CASES)
def test_int_add_of_two_tensors_in_ghdl(tmp_path, a_type, b_type, scales, out_type, reverse, ghdl):
    shape = [1, 3, 4]
    if reverse:
        second = reversed_layer("second", "x", "b", shape, a_type, b_type)
    else:
        second = copy_layer("second", "x", "b", shape, b_type)
    add = IntAdd.make_node(
        "add",
        ["x", "b"],
        "y",
        a_type,
        scales[0],
        b_type,
        scales[1],
        out_type,
        scales[2],
        out_type.lo,
        out_type.hi,
        shape,
    )
    model = lowered_model(
        [second, add], tensor_io("x", shape, a_type), tensor_io("y", shape, out_type), {"b": b_type, "y": out_type}
    )
    check_in_ghdl(model, tmp_path, input_vectors(a_type, shape, 12, seed=a_type.bits), out_type)


# a type, constant type, scales (a, constant, out), out type, ROM style
CONST_CASES = [
    (IntType(False, 2), IntType(True, 7), (0.5, 0.01, 0.03), IntType(True, 3), "block"),
    (IntType(True, 6), IntType(False, 5), (2**-3, 2**-2, 2**-2), IntType(False, 3), "distributed"),
]


@pytest.mark.parametrize("a_type,c_type,scales,out_type,style", CONST_CASES)
def test_int_add_of_a_constant_in_ghdl(tmp_path, a_type, c_type, scales, out_type, style, ghdl):
    shape = [1, 4, 6]
    const = random_ints(np.random.default_rng(c_type.bits), c_type, shape[1:])
    add = IntAdd.make_node(
        "pos",
        ["x"],
        "y",
        a_type,
        scales[0],
        c_type,
        scales[1],
        out_type,
        scales[2],
        out_type.lo,
        out_type.hi,
        shape,
        const=const,
    )
    model = lowered_model([add], tensor_io("x", shape, a_type), tensor_io("y", shape, out_type), {"y": out_type})
    check_in_ghdl(model, tmp_path, input_vectors(a_type, shape, 12, seed=a_type.bits), out_type, style)
    built = load_model(tmp_path / "build" / "model_int.onnx")
    assert getCustomOp(built.graph.node[0]).weight_memories()["c"].style == style


# in type, scales (in, out), gain, bias, out type, shape
AFFINE_CASES = [
    (
        IntType(True, 8),
        (0.02, 0.1),
        [1.3, -0.7, 0.05, -2.1, 0.4],
        [0.3, -0.2, 0.9, 0.0, -1.1],
        IntType(False, 4),
        [1, 2, 3, 5],
    ),
    (IntType(False, 2), (2**-1, 2**-2), [-1.0, 2.0], [0.25, -0.75], IntType(True, 3), [1, 6, 2]),
]


@pytest.mark.parametrize("in_type,scales,gain,bias,out_type,shape", AFFINE_CASES)
def test_int_affine_in_ghdl(tmp_path, in_type, scales, gain, bias, out_type, shape, ghdl):
    bn = IntAffine.make_node(
        "bn",
        "x",
        "y",
        in_type,
        scales[0],
        np.array(gain),
        np.array(bias),
        out_type,
        scales[1],
        out_type.lo,
        out_type.hi,
        shape,
    )
    model = lowered_model([bn], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    check_in_ghdl(model, tmp_path, input_vectors(in_type, shape, 12, seed=in_type.bits), out_type)


def test_int_affine_table_stays_in_luts_under_block_and_reads_alike_from_block_ram(tmp_path, ghdl):
    """The per-channel table is a ROM: "block" (the data's memories) leaves it in LUTs, and placed in block
    RAM (by the budget or a plan) it reads with the same latency, bit-exact."""
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.simulation import simulate_build
    from qonnx_spartan.transforms.memory_style import AnnotateMemoryStyle

    in_type, out_type, shape = IntType(True, 6), IntType(True, 5), [1, 3, 7]
    gain, bias = np.linspace(-2.0, 3.0, 7), np.linspace(1.5, -4.0, 7)
    bn = IntAffine.make_node("bn", "x", "y", in_type, 0.1, gain, bias, out_type, 0.2, out_type.lo, out_type.hi, shape)
    model = lowered_model([bn], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    placed = model.transform(AnnotateMemoryStyle("block"))
    op = getCustomOp(placed.graph.node[0])
    assert op.get_nodeattr("out_mem_style") == "block" and op.weight_memories()["t"].style == "distributed"

    getCustomOp(model.graph.node[0]).set_memory_style("t", "block")
    path = tmp_path / "lowered.onnx"
    model.save(str(path))
    build(BuildConfig(model=path, output_dir=tmp_path / "build", start_step="estimate"))
    styles = json.loads((tmp_path / "build" / "report" / "build.json").read_text())["names"]["memory_styles"]
    assert [style for name, style in styles.items() if name.endswith("_t_rom")] == ["block"]
    vectors = input_vectors(in_type, shape, 8, seed=3)
    report = simulate_build(tmp_path / "build", np.asarray(vectors, dtype=np.float32))
    assert report.bit_exact and report.cycles_per_inference == Design(model).cycles()
