"""IntMatMul: the product of two activation tensors (Q K^T, and the attention weights times V).

    y[h, m, n] = requantize(sum_k A[h, m, k] * B[h, k, n])

A and B are buffers read through strides, so splitting heads and transposing K cost only addressing;
the scale of the product (including attention's 1/sqrt(d) Mul) folds into the requantisation.
"""

from __future__ import annotations


from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.ops.base import op_node
from qonnx_spartan.ops.mac.engine import B_FROM_PORT, StridedMacOp


class IntMatMul(StridedMacOp):
    resource_group = "matmul"
    b_source = B_FROM_PORT

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "b_dtype": ("s", True, ""),
            "b_stride": ("ints", True, [0, 0, 0, 1]),  # over h, m, n, k
        }

    @staticmethod
    def make_node(
        name: str,
        inputs: list[str],
        out: str,
        a_type: IntType,
        b_type: IntType,
        loops: list[int],
        a_stride: list[int],
        b_stride: list[int],
        y_stride: list[int],
        rescale: Rescale,
        out_type: IntType,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
    ):
        """The node computing y[h, m, n] = requantize(sum_k A[h, m, k] * B[h, k, n]) clipped to [out_lo,
        out_hi], with the loops (H, M, N, K) and each operand's strides over them."""
        return op_node(
            "IntMatMul",
            list(inputs),
            out,
            name,
            out_type,
            out_shape,
            in_dtype=a_type.name,
            b_dtype=b_type.name,
            loop_sizes=list(loops),
            a_stride=list(a_stride),
            b_stride=list(b_stride),
            y_stride=list(y_stride),
            multiplier=rescale.multiplier,
            shift=rescale.shift,
            out_lo=out_lo,
            out_hi=out_hi,
        )

    def b_strides(self):
        return tuple(self.get_nodeattr("b_stride"))

    def b_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("b_dtype"))

    def b_operand(self, context):
        b = self.as_int(context[self.onnx_node.input[1]])
        return b.reshape(b.shape[0], -1)

    def b_range(self):
        return self.b_type().lo, self.b_type().hi

    def b_bits(self) -> int:
        return self.b_type().bits

    def b_signed(self) -> bool:
        return self.b_type().signed
