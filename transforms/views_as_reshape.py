"""Squeeze, Unsqueeze, Flatten, Identity and in-order Gathers as the one view the lowering reads: Reshape.

`x.squeeze(2)` after a pool, `pe.unsqueeze(0)`, `nn.Flatten()` and `nn.Identity()` only relabel
dimensions (or nothing), and so does a Gather of constant indices that takes every element in order (torch's
default exporter writes `squeeze` after a pool as `as_strided`, a Gather of 0..n-1): each becomes a
Reshape to its inferred output shape and an Identity is bypassed; later rules then see one kind of view.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from qonnx_spartan.transforms.rewrite import consumers, reshape_node, replace_node

RELABELLING_OPS = ("Squeeze", "Unsqueeze", "Flatten")


class ViewsAsReshape(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type in RELABELLING_OPS or (node.op_type == "Gather" and in_order(model, node)):
                shape = model.get_tensor_shape(node.output[0])
                if shape is None or any(not isinstance(d, int) or d <= 0 for d in shape):
                    continue
                replace_node(model, node, [reshape_node(model, node.name, node.input[0], node.output[0], shape)])
                changed = True
            elif node.op_type == "Identity":
                source, target = node.input[0], node.output[0]
                if any(o.name == target for o in model.graph.output):
                    continue  # the graph output keeps its name: left to the lowering's message
                for user in consumers(model, target):
                    user.input[:] = [source if t == target else t for t in user.input]
                model.graph.node.remove(node)
                changed = True
        return model, changed


def in_order(model: ModelWrapper, node) -> bool:
    """A Gather of constant indices that reads every element of its (non-constant) data once, in order."""
    indices = model.get_initializer(node.input[1])
    shape = model.get_tensor_shape(node.input[0])
    if indices is None or shape is None or model.get_initializer(node.input[0]) is not None:
        return False
    axis = get_by_name(node.attribute, "axis")
    table = np.arange(int(np.prod(shape))).reshape(shape)
    try:
        taken = np.take(table, np.asarray(indices, dtype=np.int64), axis=axis.i if axis is not None else 0)
    except IndexError:
        return False
    return taken.size == table.size and np.array_equal(taken.ravel(), table.ravel())
