"""The custom-op domain `qonnx_spartan.ops`: qonnx finds an op by the class named in __all__."""

from qonnx_spartan.ops.int_linear import IntLinear

DOMAIN = "qonnx_spartan.ops"

__all__ = ["IntLinear"]
