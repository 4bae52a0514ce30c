"""QONNX transformations of qonnx-spartan, one concern per module; usable in any QONNX pipeline:
`model = model.transform(Tidy()).transform(LowerToIntegerOps())`."""

from qonnx_spartan.transforms.bitwidths import AnnotateBitwidths
from qonnx_spartan.transforms.canonicalise import Canonicalise
from qonnx_spartan.transforms.estimate_resources import EstimateResources
from qonnx_spartan.transforms.lanes import AnnotateLanes
from qonnx_spartan.transforms.lower import LowerToIntegerOps
from qonnx_spartan.transforms.memory_style import AnnotateMemoryStyle
from qonnx_spartan.transforms.tidy import Tidy

__all__ = [
    "AnnotateBitwidths",
    "Tidy",
    "Canonicalise",
    "LowerToIntegerOps",
    "AnnotateLanes",
    "AnnotateMemoryStyle",
    "EstimateResources",
]
