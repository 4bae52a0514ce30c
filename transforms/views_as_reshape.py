"""Squeeze, Unsqueeze, Flatten and Identity as the one view the lowering reads: Reshape.

`x.squeeze(2)` after a pool, `pe.unsqueeze(0)`, `nn.Flatten()` and `nn.Identity()` only relabel
dimensions (or nothing), so each becomes a Reshape to its inferred output shape and an Identity is
bypassed; later rules then see one kind of view.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import consumers, reshape_node, replace_node

RELABELLING_OPS = ("Squeeze", "Unsqueeze", "Flatten")


class ViewsAsReshape(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type in RELABELLING_OPS:
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
