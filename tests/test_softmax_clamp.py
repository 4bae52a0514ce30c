"""IntSoftmax with a clamped exp table (attention scores kept unquantised at a fine scale): the table ends
at its first zero, larger distances read it; on extreme and random wide inputs the reference equals a
recomputation in Python integers with every register inside its declared width, and GHDL equals it."""

from __future__ import annotations

import numpy as np
import pytest
from exact import clamp, extremes, half_even
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io
from test_overflow import as_ints, reference_context

from qonnx_spartan.hostio import HostIO
from qonnx_spartan.intarith import IntType
from qonnx_spartan.ops import IntSoftmax


def clamped_softmax(in_type: IntType, in_scale: float, length: int, out_type: IntType, out_scale: float):
    shape = [1, 2, length]
    node = IntSoftmax.make_node(
        "softmax", "x", "y", in_type, in_scale, out_type, out_scale, out_type.lo, out_type.hi, shape, clamp=True
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


def exact(op, row: list[int]) -> list[int]:
    table, last = [int(v) for v in op.exp_table()], op.get_nodeattr("exp_clamp")
    e = [table[min(max(row) - v, last)] for v in row]
    recip = (1 << op.recip_bits) // sum(e)
    widths = op.widths()
    assert max(e).bit_length() <= widths["exp_bits"] and sum(e).bit_length() <= widths["sum_bits"]
    assert (recip * op.rescale().multiplier * max(e)).bit_length() <= widths["product_bits"]
    shift = op.rescale().shift
    lo, hi = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi")
    return [clamp(half_even(v * recip * op.rescale().multiplier, shift), lo, hi) for v in e]


@pytest.mark.parametrize("in_bits,in_scale", [(16, 2**-9), (20, 2**-6)])
def test_clamped_table_is_exact_and_bit_exact_in_ghdl(tmp_path, in_bits, in_scale, ghdl):
    in_type, out_type, length = IntType(True, in_bits), IntType(False, 8), 6
    model = clamped_softmax(in_type, in_scale, length, out_type, 1 / 255)
    op = getCustomOp(model.graph.node[0])
    last = op.get_nodeattr("exp_clamp")
    assert 0 < last < in_type.hi - in_type.lo and op.exp_table()[-1] == 0 and op.exp_table()[-2] > 0
    io = HostIO.load(model)
    rng = np.random.default_rng(in_bits)
    near = rng.integers(-2 * last, 2 * last, size=(8, io.input.count))  # distances around the clamp
    vectors = np.array(extremes(in_type, io.input.count, period=3) + near.tolist())
    context = reference_context(model, vectors)
    got = as_ints(context["y"])
    for item, row in enumerate(as_ints(vectors)):
        assert got[item] == exact(op, row[:length]) + exact(op, row[length:]), item
    report = build_and_simulate(model, tmp_path, vectors.reshape(len(vectors), *io.input.shape[1:]))
    assert report.bit_exact


def test_a_table_without_a_zero_is_not_clamped():
    model = clamped_softmax(IntType(True, 8), 1 / 32, 4, IntType(False, 8), 1 / 255)
    op = getCustomOp(model.graph.node[0])
    assert len(op.exp_table()) == 256 and op.get_nodeattr("exp_clamp") == 0  # exp(-255/32) * 2**15 > 0.5


def test_the_estimate_counts_the_clamp():
    """The clamp's comparator and the multiplexer that selects the table's last index are in the softmax's
    LUT estimate, measured apart (CLAMP_LUTS_PER_BIT): calibration/softmax_clamp.py measured 9 and 8 LUTs
    at 16-bit scores, the same softmax synthesised with and without them, and no flip-flops."""
    in_type, out_type, shape = IntType(True, 16), IntType(False, 8), [1, 6, 6]

    def op(clamp: bool):
        return getCustomOp(
            IntSoftmax.make_node("s", "x", "y", in_type, 2**-9, out_type, 2**-8, 0, 255, shape, clamp=clamp)
        )

    clamped, plain = op(True), op(False)
    assert clamped.clamp_bits() == 16 and plain.clamp_bits() == 0
    assert clamped.resource_features() == plain.resource_features()
    luts = clamped.logic_resources()["LUT"] - plain.logic_resources()["LUT"]
    assert 8 <= luts <= 9
    assert clamped.logic_resources()["FF"] == plain.logic_resources()["FF"]
