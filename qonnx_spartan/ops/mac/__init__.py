"""The MAC engine (templates/mac.vhd.j2) and the ops that run on it: a QuantLinear (B from a weight ROM), a
product of two activations (B from a second buffer), a mean (B = 1) and a padded Conv1d (a linear layer over
overlapping rows, reads outside the input 0).  Their lowering patterns are in
lower.py."""

from qonnx_spartan.ops.mac.int_conv1d import IntConv1d
from qonnx_spartan.ops.mac.int_linear import IntLinear
from qonnx_spartan.ops.mac.int_matmul import IntMatMul
from qonnx_spartan.ops.mac.int_mean import IntMean

OPS = (IntLinear, IntMatMul, IntMean, IntConv1d)
