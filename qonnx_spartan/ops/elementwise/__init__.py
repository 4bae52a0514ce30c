"""The elementwise engine (templates/elementwise.vhd.j2) and the ops that run on it: a residual or
constant add, and a per-channel affine map (a BatchNorm, a second quantiser).  Their lowering patterns are
in lower.py."""

from qonnx_spartan.ops.elementwise.int_add import IntAdd
from qonnx_spartan.ops.elementwise.int_affine import IntAffine

OPS = (IntAdd, IntAffine)
