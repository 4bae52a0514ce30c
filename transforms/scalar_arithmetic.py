"""Division and subtraction by constants as multiplication and addition, which the lowering folds.

`scores / math.sqrt(d)` (and QuantMultiheadAttention's Div of q) becomes a Mul by the reciprocal, which the
lowering folds into the rescale of the MAC before it; `x - c` becomes `x + (-c)`, a bias.  Only a constant
divisor or subtrahend is rewritten: dividing by an activation has no integer form here.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import new_constant, replace_node


class ScalarArithmetic(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in ("Div", "Sub") or len(node.input) != 2:
                continue
            data, constant = node.input
            value = model.get_initializer(constant)
            if value is None or model.get_initializer(data) is not None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if node.op_type == "Div":
                if np.any(value == 0) or not np.all(np.isfinite(value)):
                    continue  # left to the lowering's refusal
                reciprocal = new_constant(model, 1.0 / value)
                new = helper.make_node("Mul", [data, reciprocal], list(node.output), name=node.name)
            else:
                new = helper.make_node("Add", [data, new_constant(model, -value)], list(node.output), name=node.name)
            replace_node(model, node, [new])
            changed = True
        return model, changed
