"""A MatMul with its (quantised) weights on the left, `W @ x`, as `(x^T @ W^T)^T`.

The linear engine multiplies activations on the left by a weight ROM on the right; a user mixing over time
(`w_quant(W) @ x`, MLP-Mixer's token mixing) or a Gemm with the weights as A puts them on the left.  The
product is the same with both operands transposed and the result transposed back, and those three
Transposes cost nothing: the weights' Transpose is folded into the ROM (transforms/quant.py
`constant_weights`), the input's is read through strides (IntLinear `a_stride`) and the output's is
addressing for whatever reads it.  The MatMul keeps its name (plans find it by module scope).
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import fresh, producer, replace_node, transpose_node


def constant_path(model: ModelWrapper, tensor: str) -> bool:
    """Whether `tensor` is a constant: an initializer, or a Quant / Transpose / Reshape of constants."""
    if model.get_initializer(tensor) is not None:
        return True
    node = producer(model, tensor)
    if node is None or node.op_type not in ("Quant", "Transpose", "Reshape"):
        return False
    return all(constant_path(model, t) for t in node.input if t)


def swap_last(rank: int) -> list[int]:
    return [*range(rank - 2), rank - 1, rank - 2]


class WeightsOnTheRight(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "MatMul" or not constant_path(model, node.input[0]):
                continue
            w, x = node.input
            w_shape, x_shape = model.get_tensor_shape(w), model.get_tensor_shape(x)
            if constant_path(model, x) or w_shape is None or x_shape is None or len(w_shape) != 2:
                continue  # constants folded by tidy, and batched weights: left to the lowering's refusal
            w_t = fresh(model, f"{w}_transposed")
            new = [transpose_node(f"{node.name}_weights_transpose", w, w_t, [1, 0])]
            if len(x_shape) == 1:  # W @ v = v @ W^T
                new.append(helper.make_node("MatMul", [x, w_t], [node.output[0]], name=node.name))
            else:
                x_t, y_t = fresh(model, f"{x}_transposed"), fresh(model, f"{node.output[0]}_transposed")
                new += [
                    transpose_node(f"{node.name}_input_transpose", x, x_t, swap_last(len(x_shape))),
                    helper.make_node("MatMul", [x_t, w_t], [y_t], name=node.name),
                    transpose_node(f"{node.name}_output_transpose", y_t, node.output[0], swap_last(len(x_shape))),
                ]
            replace_node(model, node, new)
            changed = True
        return model, changed

