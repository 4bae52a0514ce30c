"""The integer softmax (templates/softmax.vhd.j2); its lowering pattern is in lower.py."""

from qonnx_spartan.ops.softmax.int_softmax import IntSoftmax

OPS = (IntSoftmax,)
