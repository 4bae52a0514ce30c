"""The MAC engine (IntLinear, IntMatMul; IntMean and IntConv1d have their own modules): its exact
recomputation in Python integers, its extreme designs (run by tests/test_overflow.py), and a last layer
that outputs its accumulator wider than float32's exact integers and a VHDL integer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from exact import INT2, INT8, INT16, M17, UINT4, UINT8, clamp, extreme_columns, fits_signed, shift_rounded
from onnx import helper
from op_modules import Extreme
from qonnx.custom_op.registry import getCustomOp
from single_op import linear_layer, lowered_model, tensor_io

from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.ops.mac.engine import MacOp


def exact_mac(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs in buffer order, {"acc": every partial sum the accumulator holds, "scaled": every rescaled
    sum}), as the hardware computes them: the rounding half in the accumulator's start or added to acc * M.
    The widths the op declares are checked."""
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
    acc_lo, acc_hi = op.acc_range()
    assert all(acc_lo <= p <= acc_hi for p in partials)
    assert all(fits_signed(p, op.acc_bits()) for p in partials)
    if requant:
        assert all(fits_signed(v, op.scaled_bits()) for v in scaled)  # the template's rescale register
    else:
        assert op.out_type().bits == op.acc_bits()  # the output word is the accumulator
    return y, {"acc": partials, "scaled": scaled}


RECOMPUTE = {MacOp: exact_mac}


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


def matmul_design(
    in_type: IntType, b_type: IntType, size: int, transposed: bool, negate: bool, lanes: int = 1, logic: int = 0
):
    """y = requantize(x @ B) with B = x (or -x), saturated to b_type, read as B or as B^T: with rows of
    minimums and maximums the products reach the extremes of both types.  `lanes` read copies of B's
    buffer, the last `logic` of them multiplying in LUTs."""
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
        b_depth=size * size,
        lanes=lanes,
        logic_lanes=logic,
    )
    dtypes = {"b": b_type, "y": INT8}
    return lowered_model([second, node], tensor_io("x", shape, in_type), tensor_io("y", shape, INT8), dtypes)


EXTREMES = {
    # accumulator outputs of 36 and 33 bits (wider than a VHDL integer, than float32's exact integers)
    "linear-int16-accumulator": Extreme(
        lambda: accumulator_linear(INT16, INT16, 16, [2**31 - 1, -(2**31 - 1), 5, -5], 0), True
    ),
    "linear-uint8-accumulator-shifted": Extreme(
        lambda: accumulator_linear(UINT8, INT8, 64, [0, 1, -(2**30), 2**30], 7), True
    ),
    "linear-uint8-requantised-3-lanes": Extreme(
        lambda: requantised_linear(UINT8, INT8, 2, 64, [2**20, -(2**20), 7, 0], 5, 3), True
    ),
    "linear-int2": Extreme(lambda: requantised_linear(INT2, INT2, 3, 7, [0, 0, 0, 0], 0, 1), True),
    "matmul-int8-transposed": Extreme(lambda: matmul_design(INT8, INT8, 8, transposed=True, negate=False), True),
    "matmul-int8-negated": Extreme(lambda: matmul_design(INT8, INT8, 8, transposed=False, negate=True)),
    "matmul-int16-uint4-transposed": Extreme(
        lambda: matmul_design(INT16, UINT4, 4, transposed=True, negate=False), True
    ),
    # lanes reading copies of B's buffer: at K^T's stride, and along a row with the last lane in LUTs
    "matmul-int8-transposed-4-lanes": Extreme(
        lambda: matmul_design(INT8, INT8, 8, transposed=True, negate=False, lanes=4), True
    ),
    "matmul-int8-negated-2-lanes-one-in-luts": Extreme(
        lambda: matmul_design(INT8, INT8, 8, transposed=False, negate=True, lanes=2, logic=1)
    ),
}


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
