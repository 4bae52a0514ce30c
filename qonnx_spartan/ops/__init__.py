"""The custom-op domain `qonnx_spartan.ops`: qonnx finds an op by the class named in __all__."""

from qonnx_spartan.ops.int_linear import IntLinear
from qonnx_spartan.ops.int_matmul import IntMatMul
from qonnx_spartan.ops.int_mean import IntMean

DOMAIN = "qonnx_spartan.ops"

__all__ = ["IntLinear", "IntMatMul", "IntMean"]
