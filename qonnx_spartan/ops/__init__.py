"""The custom-op domain `qonnx_spartan.ops`: qonnx finds an op by the class named in __all__."""

from qonnx_spartan.ops.base import DOMAIN
from qonnx_spartan.ops.int_add import IntAdd
from qonnx_spartan.ops.int_affine import IntAffine
from qonnx_spartan.ops.int_linear import IntLinear
from qonnx_spartan.ops.int_matmul import IntMatMul
from qonnx_spartan.ops.int_mean import IntMean
from qonnx_spartan.ops.int_softmax import IntSoftmax

__all__ = ["DOMAIN", "IntAdd", "IntAffine", "IntLinear", "IntMatMul", "IntMean", "IntSoftmax"]
