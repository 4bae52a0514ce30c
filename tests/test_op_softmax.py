"""IntSoftmax: the integer reference against the float softmax Brevitas would quantise, and the VHDL
against the reference in GHDL, bit-exact and in the cycles the op states."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from exact import clamp, half_even
from op_modules import Extreme
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io

from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.softmax.int_softmax import EXP_BITS, INT64_LIMIT, RECIP_PRECISION_BITS, IntSoftmax

INT4, INT6, INT8 = IntType(True, 4), IntType(True, 6), IntType(True, 8)
UINT4, UINT6, UINT8 = IntType(False, 4), IntType(False, 6), IntType(False, 8)


def exact_softmax(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs, the values of each register the widths declare) in Python integers; the widths are checked."""
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
    widths = op.widths()
    for register, values in held.items():
        assert max(values).bit_length() <= widths[register], register
    return outputs, held


RECOMPUTE = {IntSoftmax: exact_softmax}


def softmax_design(in_type: IntType, in_scale: float, length: int, out_type: IntType, out_scale: float):
    shape = [1, 2, length]
    node = IntSoftmax.make_node(
        "softmax", "x", "y", in_type, in_scale, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


#: tests/test_overflow.py
EXTREMES = {
    "softmax-int8-flat": Extreme(lambda: softmax_design(INT8, 1 / 4096, 64, UINT8, 1 / 255)),
    "softmax-uint8-steep": Extreme(lambda: softmax_design(UINT8, 1.0, 5, INT8, 1 / 128)),
}


def named_example(tmp_path: Path) -> tuple[Path, int]:
    """tests/test_names.py: an encoder, the softmax among MACs with and without ROM and the elementwise ops."""
    from brevitas_models import export
    from fuzz_models import FuzzCase, make_model

    case = FuzzCase("encoder", dict(window=3, d_model=4, heads=2, bits=5, po2=False))
    return export(make_model(case), tmp_path / "encoder.onnx", (1, *case.in_shape)), 1000


def softmax_node(in_type: IntType, in_scale: float, out_type: IntType, out_scale: float, shape: list[int]):
    return IntSoftmax.make_node(
        "softmax", "x", "y", in_type, in_scale, out_type, out_scale, out_type.lo, out_type.hi, shape
    )


def integer_softmax(op: IntSoftmax, x: np.ndarray) -> np.ndarray:
    context = {"x": x.astype(np.float32)}
    op.execute_node(context, None)
    return context["y"]


def extreme_rows(t: IntType, length: int) -> np.ndarray:
    """Rows at the ends of the input range: all minimum, all maximum, alternating, a single maximum."""
    alternating = np.where(np.arange(length) % 2, t.hi, t.lo)
    single_max = np.full(length, t.lo)
    single_max[length // 2] = t.hi
    return np.stack([np.full(length, t.lo), np.full(length, t.hi), alternating, single_max])


def input_vectors(t: IntType, rows: int, length: int, count: int, seed: int) -> np.ndarray:
    """`count` random inputs of `rows` rows, then inputs made of the extreme rows (repeated to fill)."""
    rng = np.random.default_rng(seed)
    random = rng.integers(t.lo, t.hi + 1, size=(count, rows, length))
    extremes = extreme_rows(t, length)
    packed = np.resize(extremes, (math.ceil(len(extremes) / rows) * rows, length)).reshape(-1, rows, length)
    return np.concatenate([random, packed])


# -- the integer reference ----------------------------------------------------------------------------
@pytest.mark.parametrize("in_type", [INT4, UINT6, INT8, UINT8])
@pytest.mark.parametrize("in_scale", [1 / 16, 1 / 8, 1 / 4])
@pytest.mark.parametrize("out_scale", [1 / 255, 1 / 256])
def test_within_one_lsb_of_quantised_float_softmax(in_type, in_scale, out_scale):
    out_type = UINT8
    for length in (1, 5, 24, 64):
        op = getCustomOp(softmax_node(in_type, in_scale, out_type, out_scale, [1, 3, length]))
        x = input_vectors(in_type, 3, length, 300, seed=length)
        y = integer_softmax(op, x)
        real = x * in_scale
        p = np.exp(real - real.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        brevitas = np.clip(np.round(p / out_scale), out_type.lo, out_type.hi)
        assert np.abs(y - brevitas).max() <= 1, length


@pytest.mark.parametrize("length", [1, 24, 1000])
@pytest.mark.parametrize("out_scale", [1 / 255, 0.0037])
def test_reciprocal_precision_and_int64_headroom(length, out_scale):
    op = getCustomOp(softmax_node(INT8, 1 / 8, UINT8, out_scale, [1, length]))
    assert op.exp_table()[0] == 2**EXP_BITS
    largest_sum = length * 2**EXP_BITS
    assert ((1 << op.recip_bits) // largest_sum).bit_length() >= RECIP_PRECISION_BITS
    assert op.exp_table().max() * op.largest_recip() * op.rescale().multiplier < INT64_LIMIT


def test_rows_too_long_for_int64_are_refused():
    with pytest.raises(SpartanError, match="too long"):
        softmax_node(INT8, 1 / 8, UINT8, 1 / 255, [1, 2**40])


# -- the VHDL against the reference -------------------------------------------------------------------
GHDL_CASES = [
    # input type, shape, output type, in_scale, out_scale, exp table style
    (INT4, [1, 1], UINT8, 1 / 4, 1 / 256, "block"),  # rows of one element: p = 1 saturates
    (UINT4, [1, 3, 5], UINT8, 1 / 16, 1 / 255, "distributed"),
    (INT6, [1, 2, 24], UINT8, 1 / 8, 1 / 255, "block"),
    (UINT6, [1, 7], INT8, 1 / 4, 1 / 128, "distributed"),  # signed output, p = 1 saturates at 127
    (INT8, [1, 2, 16], UINT4, 1 / 16, 1 / 15, "distributed"),
    (UINT8, [1, 4, 3], UINT8, 1 / 4, 0.0037, "block"),  # a 17-bit multiplier; p = 1 saturates at 255
]


@pytest.mark.parametrize("in_type,shape,out_type,in_scale,out_scale,style", GHDL_CASES)
def test_vhdl_bit_exact_in_stated_cycles(tmp_path: Path, in_type, shape, out_type, in_scale, out_scale, style, ghdl):
    node = softmax_node(in_type, in_scale, out_type, out_scale, shape)
    model = lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    rows = int(np.prod(shape[1:-1]))
    vectors = input_vectors(in_type, rows, shape[-1], 6, seed=in_type.bits).reshape(-1, *shape[1:])

    report = build_and_simulate(model, tmp_path, vectors, memory_style=style)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(model).cycles()
    built = getCustomOp(load_model(tmp_path / "build" / "model_int.onnx").graph.node[0])
    assert built.get_nodeattr("exp_mem_style") == style
