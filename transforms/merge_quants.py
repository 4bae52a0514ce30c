"""Quant nodes that are the same quantiser twice, and constant Quants no datapath holds.

- QuantMultiheadAttention quantises its input once per projection with one shared quantiser: Quants
  of the same tensor with equal scale, zero point, bit width and attributes give the same integers, so the
  readers of the later ones read the first.
- A bias quantised to 32 bits (`bias_quant=Int32Bias`) is a constant the accumulator adds, not a tensor a
  buffer holds: its Quant is folded into the values it yields (exact: an integer times the scale).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from qonnx_spartan.transforms.rewrite import consumers

#: The widest quantised tensor the datapath holds (transforms/quant.py's limit), and Int32Bias's width:
#: constants quantised wider than the first and at most the second are biases (other widths are refused).
WIDEST_TENSOR_BITS, BIAS_BITS = 16, 32


def signature(model: ModelWrapper, node):
    params = [model.get_initializer(t) for t in node.input[1:]]
    if any(p is None for p in params):
        return None
    attrs = sorted((a.name, a.SerializeToString()) for a in node.attribute)
    values = tuple(np.asarray(p).tobytes() + str(np.asarray(p).shape).encode() for p in params)
    return node.input[0], values, tuple(attrs)


class MergeQuants(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        seen = {}
        graph_outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.op_type != "Quant" or len(node.input) != 4:
                continue
            key = signature(model, node)
            if key is None:
                continue
            if model.get_initializer(node.input[0]) is not None:
                bits = float(np.asarray(model.get_initializer(node.input[3])).ravel()[0])
                if WIDEST_TENSOR_BITS < bits <= BIAS_BITS and bits == int(bits) and node.output[0] not in graph_outputs:
                    model.set_initializer(node.output[0], dequantised(model, node))
                    model.graph.node.remove(node)
                    changed = True
                continue
            first = seen.setdefault(key, node)
            if first is node or node.output[0] in graph_outputs:
                continue
            for user in consumers(model, node.output[0]):
                user.input[:] = [first.output[0] if t == node.output[0] else t for t in user.input]
            model.graph.node.remove(node)
            changed = True
        return model, changed


def dequantised(model: ModelWrapper, node) -> np.ndarray:
    x, scale, zero_point, bits = (np.asarray(model.get_initializer(t), dtype=np.float64) for t in node.input)
    signed, narrow = (get_by_name(node.attribute, a) for a in ("signed", "narrow"))
    mode = get_by_name(node.attribute, "rounding_mode")
    y = quant(
        x,
        scale,
        zero_point,
        bits,
        signed=bool(signed.i) if signed is not None else True,
        narrow=bool(narrow.i) if narrow is not None else False,
        rounding_mode=mode.s.decode() if mode is not None else "ROUND",
    )
    return np.asarray(y, dtype=np.float32)
