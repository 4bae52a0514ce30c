"""Overflow: extreme inputs (all minimum, all maximum, alternating) through designs whose weights,
multipliers, biases and offsets are extreme too, for every op.  For each design:

(a) every node's integer reference equals a recomputation in plain Python integers (no int64 to wrap),
(b) every value the hardware holds (partial sums, products, row sums, reciprocals) fits the width the op
    declares, and the extreme inputs reach the declared accumulator range (it is exact, not just safe),
(c) GHDL equals the reference bit for bit.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, copy_layer, linear_layer, lowered_model, tensor_io

from qonnx_spartan.hostio import HostIO
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.ops import DOMAIN, OPS
from qonnx_spartan.ops.elementwise import IntAdd, IntAffine
from qonnx_spartan.ops.elementwise.engine import Elementwise, word_bits
from qonnx_spartan.ops.layernorm import IntLayerNorm
from qonnx_spartan.ops.mac import IntConv1d
from qonnx_spartan.ops.mac.engine import MacOp
from qonnx_spartan.ops.softmax import IntSoftmax
from qonnx_spartan.ops.table import IntTable

INT2, INT8, INT16 = IntType(True, 2), IntType(True, 8), IntType(True, 16)
UINT4, UINT8 = IntType(False, 4), IntType(False, 8)
M17 = (1 << 17) - 1  # the widest requantisation multiplier


# -- exact arithmetic on Python integers ---------------------------------------------------------------
def half_even(v: int, s: int) -> int:
    """v / 2**s rounded half to even."""
    q, r = divmod(v, 1 << s)
    return q + (2 * r > (1 << s) or (s > 0 and 2 * r == (1 << s) and q % 2 == 1))


def shift_rounded(v: int, s: int, tie_bits: int = 0) -> int:
    """The hardware's rounding of a v that already holds the half (qs_arith.shift_rounded of v's bits from
    tie_bits up): v / 2**s floored, bit 0 cleared when the bits s-1 .. tie_bits are all 0 (a tie)."""
    q = v >> s
    return q & ~1 if s > 0 and (v >> tie_bits) & ((1 << (s - tie_bits)) - 1) == 0 else q


def test_adding_the_half_then_flooring_rounds_half_to_even():
    for s in range(1, 9):
        for x in range(-(1 << (s + 3)), 1 << (s + 3)):
            assert shift_rounded(x + (1 << (s - 1)), s) == half_even(x, s), (x, s)


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def fits_signed(v: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= v < (1 << (bits - 1))


def extremes(t: IntType, size: int, period: int = 1) -> list[list[int]]:
    """All minimum, all maximum, and alternating runs of `period` minimums and maximums, both ways."""
    alternating = [t.hi if (i // period) % 2 else t.lo for i in range(size)]
    return [[t.lo] * size, [t.hi] * size, alternating, [t.lo + t.hi - v for v in alternating]]


def input_extremes(io: HostIO) -> np.ndarray:
    """The extremes of the input, and rows alternating between all minimum and all maximum."""
    t, shape = io.input.dtype, io.input.shape
    rows = extremes(t, io.input.count, period=shape[-1])[2:] if len(shape) > 2 else []
    return np.array(extremes(t, io.input.count) + rows)


def exact_mac(op, inputs: list[list[int]]) -> tuple[list[int], list[int], list[int]]:
    """(outputs in buffer order, every partial sum the accumulator holds, every rescaled sum), as the
    hardware computes them: the rounding half in the accumulator's start or added to acc * M."""
    h, m, n, k = op.loops()
    a_s, b_s, y_s = op.a_strides(), op.b_strides(), op.y_strides()
    x = [int(v) for v in op.a_operand(np.array([inputs[0]], dtype=np.int64))[0]]  # a Conv1d's padding around it
    if op.b_source == "rom":
        b = [int(v) for v in op.weights().T.reshape(-1)]
    elif op.b_source == "port":
        b = inputs[1]
    else:
        b = None
    start = op.start_values()
    round_start, round_product = op.rounding_half()
    f = op.acc_shift
    requant = op.get_nodeattr("requant")
    mult, shift, tie_bits = op.get_nodeattr("multiplier"), op.get_nodeattr("shift"), op.get_nodeattr("tie_bits")
    lo, hi = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi")
    y = [0] * int(np.prod(op.get_nodeattr("out_shape")[1:]))
    partials, scaled = [], []
    for ih in range(h):
        for im in range(m):
            for jn in range(n):
                acc = int(start[jn]) if start is not None else 0
                for jk in range(k):
                    a = x[ih * a_s[0] + im * a_s[1] + jn * a_s[2] + jk * a_s[3]]
                    bv = 1 if b is None else b[ih * b_s[0] + im * b_s[1] + jn * b_s[2] + jk * b_s[3]]
                    acc += a * bv * 2**f
                    partials.append(acc)
                scaled.append(acc * mult + round_product)
                assert round_start == 0 or mult == 1
                out = clamp(shift_rounded(acc * mult + round_product, shift, tie_bits), lo, hi) if requant else acc
                y[ih * y_s[0] + im * y_s[1] + jn * y_s[2]] = out
    return y, partials, scaled


def check_mac_widths(op, partials: list[int], scaled: list[int]) -> None:
    acc_lo, acc_hi = op.acc_range()
    assert all(acc_lo <= p <= acc_hi for p in partials)
    assert all(fits_signed(p, op.acc_bits()) for p in partials)
    if op.get_nodeattr("requant"):
        assert all(fits_signed(v, op.scaled_bits()) for v in scaled)  # the template's rescale register
    else:
        assert op.out_type().bits == op.acc_bits()  # the output word is the accumulator


def exact_elementwise(op, inputs: list[list[int]]) -> tuple[list[int], list[int], list[int]]:
    """(outputs, every sum, every product) of IntAdd / IntAffine."""
    channels, shift = op.channels, op.get_nodeattr("shift")
    lo, hi = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi")
    if op.onnx_node.op_type == "IntAdd":
        b = [int(v) for v in op.const().reshape(-1)] if op.has_const() else inputs[1]
        ma, mb = op.get_nodeattr("mult_a"), op.get_nodeattr("mult_b")
        products = [[a * ma, bv * mb] for a, bv in zip(inputs[0], b)]
        offsets = [0] * channels
    else:
        mult = [int(v) for v in op.mult()]
        products = [[x * mult[i % channels]] for i, x in enumerate(inputs[0])]
        offsets = [int(v) for v in op.sum_offsets()]  # the hardware's: the rounding half included
    sums = [sum(p) + offsets[i % channels] for i, p in enumerate(products)]
    rounding = shift_rounded if op.rounding_half() else half_even
    outputs = [clamp(rounding(s, shift), lo, hi) for s in sums]
    return outputs, sums, [v for p in products for v in p]


def check_elementwise_widths(op, sums: list[int], products: list[int]) -> None:
    lo, hi = op.sum_range()
    assert all(lo <= s <= hi for s in sums + products)
    assert all(fits_signed(v, op.sum_bits()) for v in sums + products)
    # the product registers: operand (signed) bits + multiplier word bits
    for dtype, mults in op.terms():
        width = dtype.bits + (0 if dtype.signed else 1) + word_bits(mults)
        assert all(fits_signed(v, width) for v in products)


def exact_softmax(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs, the values of each register the widths declare)."""
    table = [int(v) for v in op.exp_table()]
    mult, shift = op.rescale().multiplier, op.rescale().shift
    lo, hi = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi")
    length = op.length
    x = inputs[0]
    outputs, held = [], {"exp_bits": [], "sum_bits": [], "recip_width": [], "scaled_recip_bits": [], "product_bits": []}
    for start in range(0, len(x), length):
        row = x[start : start + length]
        e = [table[max(row) - v] for v in row]
        total = sum(e)
        recip = (1 << op.recip_bits) // total
        products = [v * recip * mult for v in e]
        outputs += [clamp(half_even(p, shift), lo, hi) for p in products]
        held["exp_bits"] += e
        held["sum_bits"].append(total)
        held["recip_width"].append(recip)
        held["scaled_recip_bits"].append(recip * mult)
        held["product_bits"] += products
    return outputs, held


def recompute_mac(op, operands: list[list[int]]) -> list[int]:
    want, partials, scaled = exact_mac(op, operands)
    check_mac_widths(op, partials, scaled)
    return want


def recompute_elementwise(op, operands: list[list[int]]) -> list[int]:
    want, sums, products = exact_elementwise(op, operands)
    check_elementwise_widths(op, sums, products)
    return want


def recompute_softmax(op, operands: list[list[int]]) -> list[int]:
    want, held = exact_softmax(op, operands)
    widths = op.widths()
    for register, values in held.items():
        assert max(values).bit_length() <= widths[register], register
    return want


def recompute_table(op, operands: list[list[int]]) -> list[int]:
    """The word at each input's bit pattern; every word within the output type."""
    table, bits, out = [int(v) for v in op.table()], op.in_type().bits, op.out_type()
    assert all(out.lo <= v <= out.hi for v in table)
    return [table[x % (1 << bits)] for x in operands[0]]


def exact_layernorm(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs, the values of each register the widths declare), with the square root and the division
    bit by bit as the hardware's restoring steps take them."""
    c, w = op.channels, op.widths()
    f, g, e, k, exponent = (
        op.get_nodeattr(a) for a in ("eps_bits", "root_shift", "eps_term", "z_shift", "quotient_bits")
    )
    mult, offset = [int(v) for v in op.mult()], [int(v) for v in op.offsets()]
    lo, hi, shift = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi"), op.get_nodeattr("shift")
    held = {key: [] for key in ("sum_bits", "d_bits", "w_bits", "radicand_bits", "root_bits", "product_bits")}
    held.update(z_bits=[], scaled_bits=[])
    outputs, x = [], inputs[0]
    for start in range(0, len(x), c):
        row = x[start : start + c]
        held["sum_bits"] += [sum(row[: i + 1]) for i in range(c)]
        total = sum(row)
        d = [c * v - total for v in row]
        held["d_bits"] += d
        held["w_bits"] += [sum(v * v for v in d[: i + 1]) for i in range(c)]
        radicand = (sum(v * v for v in d) * 4**f + e) * 4**g
        held["radicand_bits"].append(radicand)
        remainder = root = 0
        for i in reversed(range(w["radicand_bits"] // 2)):
            remainder, trial = (remainder << 2) | ((radicand >> (2 * i)) & 3), (root << 2) | 1
            remainder, root = (remainder - trial, (root << 1) | 1) if remainder >= trial else (remainder, root << 1)
        held["root_bits"].append(root)
        remainder, quotient = 1 << (exponent - w["quotient_bits_width"]), 0
        for _ in range(w["quotient_bits_width"]):
            remainder <<= 1
            accepted = remainder >= root
            remainder, quotient = remainder - root * accepted, 2 * quotient + accepted
        products = [v * quotient for v in d]
        z = [p >> k for p in products]
        scaled = [zv * mult[i] + offset[i] for i, zv in enumerate(z)]
        held["product_bits"] += products
        held["z_bits"] += z
        held["scaled_bits"] += scaled
        outputs += [clamp(half_even(v, shift), lo, hi) for v in scaled]
    return outputs, held


def recompute_layernorm(op, operands: list[list[int]]) -> list[int]:
    want, held = exact_layernorm(op, operands)
    widths = op.widths()
    unsigned = ("w_bits", "radicand_bits", "root_bits")
    for register, values in held.items():
        if register in unsigned:
            assert all(0 <= v < 1 << widths[register] for v in values), register
        else:
            assert all(fits_signed(v, widths[register]) for v in values), register
    return want


#: The exact recomputation of each engine, which also checks the widths the op declares.
RECOMPUTATIONS = {
    MacOp: recompute_mac,
    Elementwise: recompute_elementwise,
    IntSoftmax: recompute_softmax,
    IntTable: recompute_table,
    IntLayerNorm: recompute_layernorm,
}


def recomputed(op, operands: list[list[int]]) -> list[int]:
    """The outputs of one batch item, recomputed in Python integers by the op's engine's recomputation."""
    engine = next((e for e in RECOMPUTATIONS if isinstance(op, e)), None)
    assert engine is not None, f"{type(op).__name__} has no exact recomputation in RECOMPUTATIONS"
    return RECOMPUTATIONS[engine](op, operands)


# -- the designs -----------------------------------------------------------------------------------------
def extreme_columns(t: IntType, k: int) -> np.ndarray:
    """Weights (k, 4): a column of minimums, one of maximums, two alternating."""
    return np.array(extremes(t, k)).T


def accumulator_linear(in_type: IntType, w_type: IntType, k: int, bias, acc_shift: int):
    """One IntLinear whose output is its accumulator (no output quantiser): every bit reaches the output."""
    w = extreme_columns(w_type, k)
    lo, hi = matmul_range(in_type, w * 2**acc_shift, bias)
    out_type = IntType(True, max(bits_signed(lo), bits_signed(hi)))
    shape = [1, 1, w.shape[1]]
    node = linear_layer("fc", "x", "y", shape, w, in_type, out_type, bias, acc_shift, None, (lo, hi))
    return lowered_model([node], tensor_io("x", [1, 1, k], in_type), tensor_io("y", shape, out_type), {"y": out_type})


def requantised_linear(in_type: IntType, w_type: IntType, rows: int, k: int, bias, acc_shift: int, lanes: int):
    """IntLinear with the widest multiplier (2**17 - 1) and a shift mapping about a quarter of the accumulator
    range onto INT8: the rescale register holds its widest products, and extreme sums saturate."""
    w = extreme_columns(w_type, k)
    lo, hi = matmul_range(in_type, w * 2**acc_shift, bias)
    ratio = 4 * 255 / (hi - lo)
    rescale = Rescale(M17, Rescale.from_ratio(ratio * (1 << 17) / M17).shift)
    shape = [1, rows, w.shape[1]]
    node = linear_layer("fc", "x", "y", shape, w, in_type, INT8, bias, acc_shift, rescale)
    getCustomOp(node).set_nodeattr("lanes", lanes)
    return lowered_model([node], tensor_io("x", [1, rows, k], in_type), tensor_io("y", shape, INT8), {"y": INT8})


def matmul_design(in_type: IntType, b_type: IntType, size: int, transposed: bool, negate: bool):
    """y = requantize(x @ B) with B = x (or -x), saturated to b_type, read as B or as B^T: with rows of
    minimums and maximums the products reach the extremes of both types."""
    shape = [1, size, size]
    eye = np.eye(size) * (-1 if negate else 1)
    second = linear_layer("second", "x", "b", shape, eye, in_type, b_type)
    corner = max(abs(a * b) for a in (in_type.lo, in_type.hi) for b in (b_type.lo, b_type.hi))
    rescale = Rescale(M17, Rescale.from_ratio(4 * 255 / (2 * size * corner) * (1 << 17) / M17).shift)
    node = helper.make_node(
        "IntMatMul",
        ["x", "b"],
        ["y"],
        name="mm",
        domain=DOMAIN,
        out_dtype=INT8.name,
        out_shape=shape,
        in_dtype=in_type.name,
        b_dtype=b_type.name,
        loop_sizes=[1, size, size, size],
        a_stride=[0, size, 0, 1],
        b_stride=[0, 0, size, 1] if transposed else [0, 0, 1, size],
        y_stride=[size * size, size, 1],
        multiplier=rescale.multiplier,
        shift=rescale.shift,
        out_lo=INT8.lo,
        out_hi=INT8.hi,
    )
    dtypes = {"b": b_type, "y": INT8}
    return lowered_model([second, node], tensor_io("x", shape, in_type), tensor_io("y", shape, INT8), dtypes)


def conv_design(in_type: IntType, w_type: IntType, pad: int, stride: int):
    """A padded Conv1d (3 taps over 2 channels) with extreme weights and the widest multiplier: rows inside
    the input reach the accumulator's extremes, the padded ones read zeros."""
    channels, taps, steps = 2, 3, 6
    w = extreme_columns(w_type, taps * channels)
    bias = np.array([7, -7, 0, 2**12])
    lo, hi = matmul_range(in_type, w, bias)
    rescale = Rescale(M17, Rescale.from_ratio(4 * 255 / (hi - lo) * (1 << 17) / M17).shift)
    shape = [1, (steps + 2 * pad - taps) // stride + 1, 4]
    node = IntConv1d.make_node(
        "conv", "x", "y", in_type, w, bias, 0, rescale, INT8, INT8.lo, INT8.hi, shape,
        [0, stride * channels, 0, 1], None, pad * channels, steps * channels,
    )
    inp = tensor_io("x", [1, steps, channels], in_type)
    return lowered_model([node], inp, tensor_io("y", shape, INT8), {"y": INT8})


def layernorm_design(in_type: IntType, out_type: IntType, channels: int):
    """Gains from tiny to large, both signs, offsets that saturate: extreme rows (constant, alternating,
    one maximum) make the largest deviations, squares and normalised values."""
    shape = [1, 2, channels]
    gamma = np.resize([40.0, -40.0, 1e-3, -1.0], channels)
    beta = np.resize([3.0, -3.0, 0.0, 0.5], channels)
    node = IntLayerNorm.make_node(
        "norm", "x", "y", in_type, 0.05, gamma, beta, 1e-5, out_type, 0.02, out_type.lo, out_type.hi, shape
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


def mean_design(in_type: IntType, steps: int, features: int):
    """The mean over `steps` time steps, requantised to the input's own type, ties rounded exactly."""
    rescale = Rescale.for_fraction(Fraction(1, steps), steps * in_type.lo, steps * in_type.hi)
    node = helper.make_node(
        "IntMean",
        ["x"],
        ["y"],
        name="mean",
        domain=DOMAIN,
        out_dtype=in_type.name,
        out_shape=[1, features],
        in_dtype=in_type.name,
        loop_sizes=[1, 1, features, steps],
        a_stride=[0, 0, 1, features],
        y_stride=[0, 0, 1],
        multiplier=rescale.multiplier,
        shift=rescale.shift,
        round_offset=rescale.offset,
        tie_bits=rescale.tie_bits,
        out_lo=in_type.lo,
        out_hi=in_type.hi,
    )
    inp, out = tensor_io("x", [1, steps, features], in_type), tensor_io("y", [1, features], in_type)
    return lowered_model([node], inp, out, {"y": in_type})


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


def softmax_design(in_type: IntType, in_scale: float, length: int, out_type: IntType, out_scale: float):
    shape = [1, 2, length]
    node = IntSoftmax.make_node(
        "softmax", "x", "y", in_type, in_scale, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


def table_design(in_type: IntType, out_type: IntType):
    """A table whose words alternate between the output's extremes, so the extreme inputs read both ends."""
    shape = [1, 3, 4]
    words = np.where(np.arange(1 << in_type.bits) % 2, out_type.hi, out_type.lo)
    node = IntTable.make_node("f", "x", "y", in_type, out_type, words, shape)
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


# name: (design, whether its extreme inputs reach both ends of the declared accumulator range; a product
# of x with a function of x cannot reach every corner of the two types)
DESIGNS = {
    # accumulator outputs of 36 and 33 bits (wider than a VHDL integer, than float32's exact integers)
    "linear-int16-accumulator": (
        lambda: accumulator_linear(INT16, INT16, 16, [2**31 - 1, -(2**31 - 1), 5, -5], 0),
        True,
    ),
    "linear-uint8-accumulator-shifted": (lambda: accumulator_linear(UINT8, INT8, 64, [0, 1, -(2**30), 2**30], 7), True),
    "linear-uint8-requantised-3-lanes": (
        lambda: requantised_linear(UINT8, INT8, 2, 64, [2**20, -(2**20), 7, 0], 5, 3),
        True,
    ),
    "linear-int2": (lambda: requantised_linear(INT2, INT2, 3, 7, [0, 0, 0, 0], 0, 1), True),
    "matmul-int8-transposed": (lambda: matmul_design(INT8, INT8, 8, transposed=True, negate=False), True),
    "matmul-int8-negated": (lambda: matmul_design(INT8, INT8, 8, transposed=False, negate=True), False),
    "matmul-int16-uint4-transposed": (lambda: matmul_design(INT16, UINT4, 4, transposed=True, negate=False), True),
    "conv1d-int8-padded": (lambda: conv_design(INT8, INT8, 2, 1), True),
    "conv1d-uint8-padded-strided": (lambda: conv_design(UINT8, INT8, 1, 2), True),
    "layernorm-int8-64": (lambda: layernorm_design(INT8, INT8, 64), False),
    "layernorm-uint4-2": (lambda: layernorm_design(UINT4, INT2, 2), False),
    "mean-int16": (lambda: mean_design(INT16, 64, 3), True),
    "mean-int8-24-steps": (lambda: mean_design(INT8, 24, 3), True),
    "add-int16": (lambda: add_design(INT16, INT16, (0.9999, 0.7777, 1.0), None), False),
    "add-uint8-constant-int16": (lambda: add_design(UINT8, UINT8, (1.0, 0.00913, 1.7), INT16), False),
    "affine-int16": (lambda: affine_design(INT16, INT16), False),
    "softmax-int8-flat": (lambda: softmax_design(INT8, 1 / 4096, 64, UINT8, 1 / 255), False),
    "softmax-uint8-steep": (lambda: softmax_design(UINT8, 1.0, 5, INT8, 1 / 128), False),
    "table-int8-to-uint8": (lambda: table_design(INT8, UINT8), False),
    "table-int2-to-int2": (lambda: table_design(INT2, INT2), False),
}


def reference_context(model, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the integer reference over a batch of input vectors."""
    io = HostIO.load(model)
    batched = copy.deepcopy(model)
    batched.set_tensor_shape(io.input.name, [len(vectors), *io.input.shape[1:]])
    x = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), *io.input.shape[1:])
    return execute_onnx(batched, {io.input.name: x}, return_full_exec_context=True)


def as_ints(a: np.ndarray) -> list[list[int]]:
    """Per batch item, the flat values as Python integers (the containers are exact floats)."""
    return [[int(v) for v in row] for row in np.asarray(a).reshape(len(a), -1)]


def test_every_registered_op_has_an_extreme_design():
    """Every op of the registry is recomputed exactly and runs in a design of DESIGNS."""
    covered = {node.op_type for make, _ in DESIGNS.values() for node in make().graph.node}
    for name, op in OPS.items():
        assert name in covered, f"{name}: no design in DESIGNS"
        assert any(issubclass(op, engine) for engine in RECOMPUTATIONS), f"{name}: no exact recomputation"


@pytest.mark.parametrize("name", list(DESIGNS))
def test_extremes_exact_within_declared_widths_and_in_ghdl(tmp_path: Path, name, ghdl):
    make, reaches = DESIGNS[name]
    model = make()
    io = HostIO.load(model)
    vectors = input_extremes(io)
    context = reference_context(model, vectors)
    for node in model.graph.node:
        op = getCustomOp(node)
        inputs = [as_ints(context[t]) for t in node.input]
        reference = as_ints(context[node.output[0]])
        for item, got in enumerate(reference):
            want = recomputed(op, [values[item] for values in inputs])
            assert got == want, (node.name, item)  # (a)
    # (b) the extreme inputs reach the declared accumulator range
    last = getCustomOp(model.graph.node[-1])
    if reaches:
        inputs = [as_ints(context[t]) for t in last.onnx_node.input]
        reached = [p for item in range(len(vectors)) for p in exact_mac(last, [v[item] for v in inputs])[1]]
        assert (min(reached + [0]), max(reached + [0])) == last.acc_range()

    report = build_and_simulate(model, tmp_path, vectors.reshape(len(vectors), *io.input.shape[1:]))  # (c)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.reference.tolist() == as_ints(context[io.output.name])


@pytest.mark.parametrize("bits,sizes,min_width", [(12, [64, 2], 25), (16, [16, 2], 33)])
def test_brevitas_mlp_with_a_wide_accumulator_output(tmp_path: Path, bits, sizes, min_width, ghdl, brevitas):
    """Regression: a last layer without an output quantiser outputs its accumulator, here wider than float32's
    exact integers (the reference once rounded it) and than a VHDL integer (the test bench once failed)."""
    from brevitas_models import export, make_mlp

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.simulation import simulate_build

    onnx_path = export(make_mlp(sizes, bits, bias=False), tmp_path / "mlp.onnx", (1, sizes[0]))
    lowered = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "build"))
    assert getCustomOp(lowered.graph.node[-1]).out_type().bits >= min_width
    x = np.random.default_rng(bits).normal(size=(16, sizes[0])).astype(np.float32) * 1e3  # saturating inputs
    report = simulate_build(tmp_path / "build", x)
    assert np.abs(report.reference).max() >= 2 ** (min_width - 2)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
