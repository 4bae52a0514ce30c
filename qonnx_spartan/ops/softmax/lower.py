"""Lowering pattern of the integer softmax (registered in PATTERNS, walked by transforms/lower.py):

    Softmax Quant  -> IntSoftmax (its input clamped when it reads attention scores kept unquantised)

The pattern ends at the Quant after the softmax.
"""

from __future__ import annotations

from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.ops.softmax.int_softmax import IntSoftmax
from qonnx_spartan.transforms.lower import IntTensor, Lowering, Pattern
from qonnx_spartan.transforms.quant import node_label


def lower_softmax(lowering: Lowering, softmax) -> None:
    x = lowering.contiguous(softmax.input[0], softmax)
    axis = get_by_name(softmax.attribute, "axis")
    rank = len(lowering.shape(softmax.input[0]))
    if axis is not None and axis.i not in (-1, rank - 1):
        raise SpartanError(f"{node_label(softmax)}: softmax over axis {axis.i}; only the last axis is supported")
    chain, out_quant = lowering.quant_after(softmax)
    if out_quant is None:
        raise SpartanError(f"{node_label(softmax)}: the softmax output must be quantised")
    out = IntTensor(
        chain[-1].output[0],
        out_quant.scale,
        out_quant.dtype,
        max(out_quant.lo, 0),
        out_quant.hi,
        lowering.buffer_shape(chain[-1].output[0]),
    )
    node = IntSoftmax.make_node(
        softmax.name,
        x.name,
        out.name,
        x.dtype,
        x.scale,
        out.dtype,
        out.scale,
        out.lo,
        out.hi,
        list(out.shape),
        clamp=x.name in lowering.scores,
    )
    lowering.finish([softmax, *chain], out, node)


PATTERNS = (Pattern("Softmax", lower_softmax),)
