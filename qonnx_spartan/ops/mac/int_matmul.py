"""IntMatMul: the product of two activation tensors (Q K^T, and the attention weights times V).

    y[h, m, n] = requantize(sum_k A[h, m, k] * B[h, k, n])

A and B are buffers read through strides, so splitting heads and transposing K cost only addressing;
the scale of the product (including attention's 1/sqrt(d) Mul) folds into the requantisation.

Lanes: P output features n = g*P + p in parallel need P elements of B per cycle, and B's buffer has one
read port.  The engine holds P - 1 copies of it in LUTs, written with the producer's every write (it
passes the write port on), copy p read at lane 0's address plus p times B's n-stride: a copy serves any
stride, K^T's included.  P divides N, so no lane reads past the buffer (`b_depth` words, the producer's).
"""

from __future__ import annotations

from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.memory import Memory, address_bits
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
            # output features computed in parallel, as requested (the lanes step sets it)
            "lanes": ("i", False, 1),
            # words of B's buffer (its producer's output), which a lane's copy holds; 0: no lanes
            "b_depth": ("i", False, 0),
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
        b_depth: int = 0,
    ):
        """The node computing y[h, m, n] = requantize(sum_k A[h, m, k] * B[h, k, n]) clipped to [out_lo,
        out_hi], with the loops (H, M, N, K) and each operand's strides over them; B's buffer holds
        `b_depth` words."""
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
            b_depth=b_depth,
        )

    def lanes(self) -> int:
        """The requested lanes clamped to K (a group drains while the next accumulates) and to a divisor of N
        (no lane reads past B's buffer); one while B's buffer is unknown."""
        requested = self.requested_lanes()
        _, _, n, k = self.loops()
        if not self.get_nodeattr("b_depth"):
            return 1
        return max(p for p in range(1, min(requested, k, n) + 1) if n % p == 0)

    def next_lanes(self, after: int | None = None) -> int | None:
        """The next lane count after `after` (default the current count) that takes a group off each row:
        the next divisor of N."""
        n = self.loops()[2]
        return next((p for p in range((after or self.lanes()) + 1, n + 1) if n % p == 0), None)

    def buffer_copies(self) -> list[Memory]:
        """The copies of B's buffer the lanes beyond the first read, in LUTs."""
        return [Memory(self.get_nodeattr("b_depth"), self.b_bits(), "distributed")] * (self.lanes() - 1)

    def copy_address_adders(self) -> int:
        """LUTs of the adders that give copy p its address (lane 0's plus p times B's n-stride): one per bit
        above the offset's trailing zeros."""
        width, stride = self.copy_address_bits(), self.b_strides()[2]
        return sum(max(0, width - ((p * stride) & -(p * stride)).bit_length() + 1) for p in range(1, self.lanes()))

    def copy_address_bits(self) -> int:
        return address_bits(self.get_nodeattr("b_depth"))

    def exact_resources(self) -> dict[str, int]:
        resources = super().exact_resources()
        if self.lanes() > 1:
            resources["LUT"] = resources.get("LUT", 0) + self.copy_address_adders()
        return resources

    def template_context(self) -> dict:
        context = super().template_context()
        lanes = self.lanes()
        if lanes > 1:
            # lane 0 steps over groups of P features; copy p adds p n-strides
            if self.groups() > 1:
                context["b_strides"]["g"] = lanes * self.b_strides()[2]
            context["copies"] = {"depth": self.get_nodeattr("b_depth"), "n_stride": self.b_strides()[2]}
        return context

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
