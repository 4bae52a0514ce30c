"""The many ways users write a model, as the one form the lowering maps (docs/frontend.md).

Runs each rewrite of the front end until none applies, with qonnx's cleanup and shape inference after
every change (the rules read inferred shapes).  A model already in canonical form comes out unchanged,
byte for byte: the rules only fire on what the lowering cannot read.
"""

from __future__ import annotations

from onnx.shape_inference import InferenceError
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.transforms.batchnorm_views import BatchNormThroughViews
from qonnx_spartan.transforms.cleanup import cleanup, infer_shapes
from qonnx_spartan.transforms.einsum_to_matmul import EinsumToMatMul
from qonnx_spartan.transforms.merge_quants import MergeQuants
from qonnx_spartan.transforms.pool_to_mean import PoolToMean
from qonnx_spartan.transforms.quant_before_views import QuantBeforeViews
from qonnx_spartan.transforms.scalar_arithmetic import ScalarArithmetic
from qonnx_spartan.transforms.split_packed_linear import SplitPackedLinear
from qonnx_spartan.transforms.transpose_before_function import TransposeBeforeFunction
from qonnx_spartan.transforms.views_as_reshape import ViewsAsReshape
from qonnx_spartan.transforms.weights_on_the_right import WeightsOnTheRight

#: Each rule makes progress towards fewer non-canonical nodes, so rounds are few; this bounds a bug.
MAX_ROUNDS = 50


def rules() -> list[Transformation]:
    return [
        ViewsAsReshape(),
        ScalarArithmetic(),
        MergeQuants(),
        SplitPackedLinear(),
        EinsumToMatMul(),
        WeightsOnTheRight(),
        PoolToMean(),
        BatchNormThroughViews(),
        QuantBeforeViews(),
        TransposeBeforeFunction(),
    ]


class Canonicalise(Transformation):
    def apply(self, model: ModelWrapper):
        for _ in range(MAX_ROUNDS):
            progress = False
            for rule in rules():
                model, changed = rule.apply(model)
                if changed:
                    progress = True
                    try:
                        model = infer_shapes(cleanup(model))
                    except InferenceError as e:
                        raise SpartanError(
                            f"the model's tensor shapes contradict each other after {type(rule).__name__} "
                            f"({' '.join(str(e).split())})"
                        ) from None
            if not progress:
                return model, False
        raise AssertionError("canonicalisation did not settle")
