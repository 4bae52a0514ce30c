"""A packed projection read in slices as one linear layer per slice.

QuantMultiheadAttention with `packed_in_proj=True` computes q, k and v with one (3D x D) linear layer and
slices its output along the features.  A per-tensor weight Quant gives the same integers for any rows of
its float weights, so each slice is a linear layer of its own: the Quant copied onto the sliced float
weights (same scale, zero point and width), the bias sliced likewise.  The layers keep the packed layer's
scope in their names, so a plan entry for the module still names all three.
"""

from __future__ import annotations

import copy

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import consumers, fresh, new_constant, perm_of, producer, replace_node


def feature_slice(model: ModelWrapper, node, rank: int) -> tuple[int, int] | None:
    """(start, end) of a Slice over the last axis with step 1 and constant bounds, else None."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    values = [model.get_initializer(t) if t else None for t in node.input[1:]] + [None] * (5 - len(node.input))
    starts, ends, axes, steps = values[:4]
    if starts is None or ends is None or starts.size != 1:
        return None
    axis = int(axes.ravel()[0]) % rank if axes is not None else 0
    if axis != rank - 1 or (steps is not None and int(steps.ravel()[0]) != 1):
        return None
    return int(starts.ravel()[0]), int(ends.ravel()[0])


class SplitPackedLinear(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for matmul in list(model.graph.node):
            if matmul.op_type == "MatMul":
                changed |= self.split(model, matmul)
        return model, changed

    @staticmethod
    def split(model: ModelWrapper, matmul) -> bool:
        weight_path = []  # the Transpose (if any) and the Quant between the float weights and the MatMul
        node = producer(model, matmul.input[1])
        if node is not None and node.op_type == "Transpose":
            weight_path.append(node)
            node = producer(model, node.input[0])
        if node is None or node.op_type != "Quant" or model.get_initializer(node.input[0]) is None:
            return False
        quant, floats = node, model.get_initializer(node.input[0])
        transposed = bool(weight_path) and perm_of(weight_path[0], 2) == [1, 0]
        if floats.ndim != 2 or (weight_path and not transposed):
            return False
        tail, bias, bias_add = matmul.output[0], None, None
        users = consumers(model, tail)
        if len(users) == 1 and users[0].op_type == "Add":
            other = [t for t in users[0].input if t != tail]
            bias = model.get_initializer(other[0]) if len(other) == 1 else None
            if bias is not None:
                bias_add, tail = users[0], users[0].output[0]
        shape = model.get_tensor_shape(tail)
        slices = consumers(model, tail)
        bounds = [feature_slice(model, s, len(shape)) for s in slices] if shape else [None]
        if not slices or any(b is None for b in bounds) or any(o.name == tail for o in model.graph.output):
            return False
        if len(consumers(model, quant.output[0])) != 1:
            return False
        features = shape[-1]
        for k, (sl, (start, end)) in enumerate(zip(slices, bounds)):
            start, end = (max(0, min(features, v if v >= 0 else v + features)) for v in (start, end))
            rows = floats[start:end] if transposed else floats[:, start:end]
            part = copy.deepcopy(quant)
            part.name = f"{quant.name}_part{k}"
            part.input[0] = new_constant(model, rows)
            part.output[0] = fresh(model, f"{quant.output[0]}_part{k}")
            new, weights = [part], part.output[0]
            if transposed:
                w_t = fresh(model, f"{weight_path[0].output[0]}_part{k}")
                name = f"{weight_path[0].name}_part{k}"
                new.append(helper.make_node("Transpose", [weights], [w_t], name=name, perm=[1, 0]))
                weights = w_t
            product = sl.output[0] if bias is None else fresh(model, f"{matmul.output[0]}_part{k}")
            new.append(helper.make_node("MatMul", [matmul.input[0], weights], [product], name=f"{matmul.name}_part{k}"))
            if bias is not None:
                values = np.broadcast_to(bias, (features,))[start:end]
                new.append(
                    helper.make_node(
                        "Add", [product, new_constant(model, values)], [sl.output[0]], name=f"{bias_add.name}_part{k}"
                    )
                )
            replace_node(model, sl, new)
        for old in [matmul, *([bias_add] if bias_add is not None else []), quant, *weight_path]:
            model.graph.node.remove(old)
        return True
