"""BatchNormalization through a transposed view as BatchNorm over rows of features.

`BatchNorm1d(x.transpose(1, 2)).transpose(1, 2)` (or `permute(0, 2, 1)`) on (batch, time, features)
normalises the features, x's last axis, which the Transpose put on the channel axis.  That is the same
per-channel affine map applied to x read as (rows, features): x -> Reshape (-1, C) -> BatchNormalization
-> Reshape back -> the Transpose, now after the normalisation.  The lowering maps BatchNorm over
(rows, features); the Transpose that undoes the user's (or the one left) is addressing.
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
)


class BatchNormThroughViews(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for bn in list(model.graph.node):
            if bn.op_type != "BatchNormalization":
                continue
            view = producer(model, bn.input[0])
            shape = model.get_tensor_shape(view.input[0]) if view is not None else None
            if view is None or view.op_type != "Transpose" or shape is None or len(shape) < 2:
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
