"""BatchNormalization through a transposed view as BatchNorm over rows of features.

`BatchNorm1d(x.transpose(1, 2)).transpose(1, 2)` (or `permute(0, 2, 1)`) on (batch, time, features)
normalises the features, x's last axis, which the Transpose put on the channel axis.  That is the same
per-channel affine map applied to x read as (rows, features): x -> Reshape (-1, C) -> BatchNormalization
-> Reshape back -> the Transpose, now after the normalisation.  The lowering maps BatchNorm over
(rows, features); the Transpose that undoes the user's (or the one left) is addressing.

`BatchNorm1d(conv(x))` on a Conv1d's (batch, channels, time) result (a TCN or ResNet-1d stem) normalises
axis 1 with no view before it: it becomes Transpose to channels last -> Reshape (-1, C) ->
BatchNormalization -> Reshape back -> Transpose back, so that the Conv1d, read only by that Transpose,
writes time-major and the normalisation reads rows.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import (
    forget_shapes,
    only_consumer,
    perm_of,
    producer,
    replace_node,
    reshape_node,
    transpose_node,
)


class BatchNormThroughViews(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for bn in list(model.graph.node):
            if bn.op_type != "BatchNormalization":
                continue
            view = producer(model, bn.input[0])
            if view is None or view.op_type != "Transpose":
                changed |= channels_last(model, bn)
                continue
            shape = model.get_tensor_shape(view.input[0])
            if shape is None or len(shape) < 2:
                continue
            perm = perm_of(view, len(shape))
            if perm[1] != len(shape) - 1 or only_consumer(model, view.output[0]) is not bn:
                continue
            source, bn_output = view.input[0], bn.output[0]
            rows, normalised = f"{bn.name}_rows_out", f"{bn.name}_normalised"
            model.graph.node.remove(view)
            bn.input[0], bn.output[0] = rows, normalised
            view.input[0] = f"{bn.name}_unrows_out"
            view.output[0] = bn_output
            into_rows = reshape_node(model, f"{bn.name}_rows", source, rows, [-1, shape[-1]])
            back = reshape_node(model, f"{bn.name}_unrows", normalised, view.input[0], shape)
            replace_node(model, bn, [into_rows, bn, back, view])
            forget_shapes(model, [bn_output])
            changed = True
        return model, changed


def channels_last(model: ModelWrapper, bn) -> bool:
    """BatchNorm over axis 1 of a tensor of rank 3 or more as BatchNorm over rows of channels, between a
    Transpose that puts the channels last and the one that puts them back."""
    shape = model.get_tensor_shape(bn.input[0])
    if shape is None or len(shape) < 3:
        return False
    rank = len(shape)
    perm = [0, *range(2, rank), 1]
    back = [0, rank - 1, *range(1, rank - 1)]
    last = [shape[p] for p in perm]
    source, bn_output = bn.input[0], bn.output[0]
    names = {k: f"{bn.name}_{k}_out" for k in ("channels_last", "rows", "normalised", "unrows")}
    bn.input[0], bn.output[0] = names["rows"], names["normalised"]
    replace_node(
        model,
        bn,
        [
            transpose_node(f"{bn.name}_channels_last", source, names["channels_last"], perm),
            reshape_node(model, f"{bn.name}_rows", names["channels_last"], names["rows"], [-1, shape[1]]),
            bn,
            reshape_node(model, f"{bn.name}_unrows", names["normalised"], names["unrows"], last),
            transpose_node(f"{bn.name}_channels_first", names["unrows"], bn_output, back),
        ],
    )
    forget_shapes(model, [bn_output])
    return True
