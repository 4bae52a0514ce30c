"""Averages over time in every exported form as the one the lowering maps: ReduceMean over the time axis
of (batch, time, features).

- GlobalAveragePool, and an AveragePool whose kernel covers the whole input without padding
  (`nn.AdaptiveAvgPool1d(1)`, `nn.AvgPool1d(T)`), are a ReduceMean over the spatial axes, keeping them;
- ReduceSum is a ReduceMean times the count, a Mul the lowering folds into the rescale;
A mean of a transposed view (`pool(x.transpose(1, 2))`) is read through strides by the lowering; the
Squeeze after a pool becomes a Reshape (transforms/views_as_reshape.py).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from qonnx_spartan.transforms.rewrite import fresh, new_constant, opset, replace_node


def reduce_axes(model: ModelWrapper, node) -> list[int] | None:
    """The axes a Reduce node reduces (attribute before opset 18, input after), None when not constant."""
    attr = get_by_name(node.attribute, "axes")
    if attr is not None:
        return list(attr.ints)
    if len(node.input) > 1 and node.input[1]:
        axes = model.get_initializer(node.input[1])
        return None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
    return []


def keepdims(node) -> bool:
    attr = get_by_name(node.attribute, "keepdims")
    return attr is None or bool(attr.i)


def reduce_mean(model: ModelWrapper, name: str, src: str, dst: str, axes, keep: bool):
    axes = [int(a) for a in axes]
    if opset(model) >= 18:
        return helper.make_node(
            "ReduceMean", [src, new_constant(model, axes, np.int64)], [dst], name=name, keepdims=int(keep)
        )
    return helper.make_node("ReduceMean", [src], [dst], name=name, axes=axes, keepdims=int(keep))


class PoolToMean(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            shape = model.get_tensor_shape(node.input[0]) if node.input else None
            if shape is None:
                continue
            rank = len(shape)
            if node.op_type == "GlobalAveragePool" or (node.op_type == "AveragePool" and whole_window(node, shape)):
                replace_node(
                    model, node, [reduce_mean(model, node.name, node.input[0], node.output[0], range(2, rank), True)]
                )
                changed = True
            elif node.op_type == "ReduceSum":
                axes = reduce_axes(model, node)
                if not axes:
                    continue  # all axes, or not constant: left to the lowering's refusal
                count = int(np.prod([shape[a % rank] for a in axes]))
                mean = fresh(model, f"{node.name}_mean")
                replace_node(
                    model,
                    node,
                    [
                        reduce_mean(model, node.name, node.input[0], mean, axes, keepdims(node)),
                        helper.make_node(
                            "Mul",
                            [mean, new_constant(model, float(count))],
                            [node.output[0]],
                            name=f"{node.name}_count",
                        ),
                    ],
                )
                changed = True
        return model, changed


def whole_window(node, shape) -> bool:
    """An AveragePool whose single window is the whole (unpadded) input."""
    kernel = get_by_name(node.attribute, "kernel_shape")
    pads = get_by_name(node.attribute, "pads")
    auto_pad = get_by_name(node.attribute, "auto_pad")
    return (
        kernel is not None
        and list(kernel.ints) == list(shape[2:])
        and (pads is None or not any(pads.ints))
        and (auto_pad is None or auto_pad.s in (b"NOTSET", b"VALID"))
    )
