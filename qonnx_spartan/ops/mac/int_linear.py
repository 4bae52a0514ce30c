"""IntLinear: y = requantize((x @ W) * 2**f + b) over the rows of x — a QuantLinear and its activation
quantiser.  The f fractional bits let a float bias be held precisely (see ops/mac/lower.py).

Runs on the MAC engine (ops/mac/engine.py) with B read from a weight ROM; x is read row-major or through the
strides of a view (`a_stride`: a transposed input, as `W @ x` becomes), y written row-major or, after a
transposed input, in its readers' layout (`y_stride`).  The attribute `lanes` asks for P output features
in parallel (clamped to min(P, K, N)): ROM word g*K + k then holds W[k, g*P + p] in bits p*w .. p*w + w-1
for p = 0..P-1 (0 past N), depth K*ceil(N/P), width P*w.  With one lane that is W^T row by row (n*K + k),
so the B strides (0, 0, K, 1) address both the reference's B and the ROM's words over groups.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import IntType, Rescale, bits_signed
from qonnx_spartan.memory import STYLES, Memory, rom
from qonnx_spartan.ops.base import int_tensor, node_memo, op_memo, op_node
from qonnx_spartan.ops.mac.engine import B_FROM_ROM, MacOp


class IntLinear(MacOp):
    resource_group = "linear"
    b_source = B_FROM_ROM

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "weights": ("t", True, np.zeros((1, 1))),  # integer W, shaped (K, N)
            "bias": ("t", True, np.zeros((1,))),  # integer b at 2**-f accumulator LSBs, shaped (N,)
            "w_mem_style": ("s", False, "distributed", set(STYLES)),
            # output features computed in parallel, as requested (a plan or search sets it per layer)
            "lanes": ("i", False, 1),
            # x read through a strided view (h, m, n, k), e.g. transposed (x^T @ W); none: row-major
            "a_stride": ("ints", False, []),
            # y written through strides (h, m, n), in the layout its readers' view asks for; none: row-major
            "y_stride": ("ints", False, []),
        }

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        weights: np.ndarray,
        bias: np.ndarray,
        acc_shift: int,
        rescale: Rescale | None,
        out_type: IntType,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
        a_stride: list[int] | None = None,
        y_stride: list[int] | None = None,
        a_offset: int = 0,
    ):
        """The node computing requantize((x @ weights) * 2**acc_shift + bias) clipped to [out_lo, out_hi]
        (integer weights and bias); `rescale` None outputs the accumulator itself.  `a_stride` and
        `a_offset` read x through a view, `y_stride` writes y in its readers' layout (both row-major when
        None)."""
        return op_node(
            "IntLinear",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            acc_shift=acc_shift,
            weights=int_tensor("weights", weights),
            bias=int_tensor("bias", bias),
            requant=int(rescale is not None),
            multiplier=rescale.multiplier if rescale else 1,
            shift=rescale.shift if rescale else 0,
            out_lo=int(out_lo),
            out_hi=int(out_hi),
            **({"a_stride": list(a_stride)} if a_stride else {}),
            **({"a_offset": int(a_offset)} if a_offset else {}),
            **({"y_stride": list(y_stride)} if y_stride else {}),
        )

    def weights(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("weights"), dtype=np.int64)

    def bias(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("bias"), dtype=np.int64)

    @op_memo
    def lanes(self) -> int:
        """The requested lanes clamped to min(P, K, N): a group's results drain through the shared rescale
        one per cycle while the next group accumulates for K cycles, and lanes past N would be idle."""
        k, n = self.weights().shape
        return min(self.requested_lanes(), k, n)

    @op_memo
    def loops(self):
        k, n = self.weights().shape
        rows = int(np.prod(self.get_nodeattr("out_shape")[1:], dtype=np.int64)) // n
        return (1, rows, n, k)

    def a_strides(self):
        strides = self.get_nodeattr("a_stride")
        if strides:
            return tuple(strides)
        _, _, _, k = self.loops()
        return (0, k, 0, 1)

    def y_strides(self):
        return tuple(self.get_nodeattr("y_stride")) or super().y_strides()

    def b_strides(self):
        _, _, _, k = self.loops()
        return (0, 0, k, 1)

    def b_operand(self, context) -> np.ndarray:
        return self.weights().T.reshape(-1)

    @op_memo
    def b_bits(self) -> int:
        w = self.weights()
        return max(bits_signed(int(w.min())), bits_signed(int(w.max())), 2)

    @op_memo
    def b_range(self) -> tuple[int, int]:
        w = self.weights()
        return int(w.min()), int(w.max())

    def acc_range(self) -> tuple[int, int]:
        """Tighter than the engine's generic bound: the actual weights are known."""
        from qonnx_spartan.intarith import matmul_range

        return matmul_range(self.in_type(), self.weights() * 2**self.acc_shift, self.start_values())

    @node_memo
    def weight_memories(self) -> dict[str, Memory]:
        """The wide weight ROM (its cells are counted from its words), kept per node (node_memo)."""
        k, n = self.weights().shape
        lanes, groups = self.lanes(), self.groups()
        padded = np.zeros((k, groups * lanes), dtype=np.int64)
        padded[:, :n] = self.weights()
        words = padded.reshape(k, groups, lanes).transpose(1, 0, 2).reshape(groups * k, lanes)  # word g*K + k
        return {"w": rom(k * groups, words, self.b_bits(), self.get_nodeattr("w_mem_style"))}

    def rom_words(self, role: str) -> list[int]:
        """Word g*K + k: the weights of group g's lanes for input k, lane p in bits p*w and up (Python
        integers: P*w may exceed 64 bits)."""
        if role != "w":
            raise KeyError(role)
        k, n = self.weights().shape
        lanes, bits = self.lanes(), self.b_bits()
        padded = np.zeros((k, self.groups() * lanes), dtype=np.int64)
        padded[:, :n] = self.weights()
        mask = (1 << bits) - 1
        return [
            sum((int(padded[i, g * lanes + p]) & mask) << (bits * p) for p in range(lanes))
            for g in range(self.groups())
            for i in range(k)
        ]
