"""IntLinear: y = requantize((x @ W) * 2**f + b) over the rows of x — a QuantLinear and its activation
quantiser.  The f fractional bits let a float bias be held precisely (see transforms/lower.py).

Runs on the MAC engine (ops/mac.py) with B read from a weight ROM holding W^T row by row (address
n*K + k); x is read row-major, y written row-major.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import bits_signed
from qonnx_spartan.memory import STYLES, Memory
from qonnx_spartan.ops.mac import B_FROM_ROM, MacOp


class IntLinear(MacOp):
    b_source = B_FROM_ROM

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "weights": ("t", True, np.zeros((1, 1))),  # integer W, shaped (K, N)
            "bias": ("t", True, np.zeros((1,))),  # integer b at 2**-f accumulator LSBs, shaped (N,)
            "w_mem_style": ("s", False, "distributed", set(STYLES)),
        }

    def weights(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("weights"), dtype=np.int64)

    def bias(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("bias"), dtype=np.int64)

    def loops(self):
        k, n = self.weights().shape
        rows = int(np.prod(self.get_nodeattr("out_shape")[1:-1], dtype=np.int64))
        return (1, rows, n, k)

    def a_strides(self):
        _, _, _, k = self.loops()
        return (0, k, 0, 1)

    def b_strides(self):
        _, _, _, k = self.loops()
        return (0, 0, k, 1)

    def b_operand(self, context) -> np.ndarray:
        return self.weights().T.reshape(-1)

    def b_bits(self) -> int:
        w = self.weights()
        return max(bits_signed(int(w.min())), bits_signed(int(w.max())), 2)

    def b_range(self) -> tuple[int, int]:
        w = self.weights()
        return int(w.min()), int(w.max())

    def acc_range(self) -> tuple[int, int]:
        """Tighter than the engine's generic bound: the actual weights are known."""
        from qonnx_spartan.intarith import matmul_range

        return matmul_range(self.in_type(), self.weights() * 2**self.acc_shift, self.bias())

    def weight_memories(self) -> dict[str, Memory]:
        k, n = self.weights().shape
        return {"w": Memory(k * n, self.b_bits(), self.get_nodeattr("w_mem_style"), read_only=True)}

    def rom_words(self, role: str) -> list[int]:
        if role != "w":
            raise KeyError(role)
        return [int(v) for v in self.weights().T.reshape(-1)]
