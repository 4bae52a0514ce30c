"""IntLinear: y = requantize((x @ W) * 2**f + b) over the rows of x — a QuantLinear and its activation
quantiser.  The f fractional bits let a float bias be held precisely (see transforms/lower.py).

Hardware: one multiply-accumulate per cycle, a pipeline fed by counters so that back-to-back dot products
run without bubbles; a fixed tail (memory read, product, accumulate, rescale, saturate, write) follows the
last product.  Weights live in a ROM of their own, row n of W^T at address n*K.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range, requantize
from qonnx_spartan.memory import STYLES, Memory
from qonnx_spartan.ops.base import SpartanOp

#: Cycles from the last multiply-accumulate issue to the done pulse: read, product, accumulate,
#: rescale, saturate, write (see the pipeline in int_linear.vhd.j2).
PIPELINE_TAIL = 5


class IntLinear(SpartanOp):
    template = "int_linear.vhd.j2"

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            "weights": ("t", True, np.zeros((1, 1))),  # integer W, shaped (K, N)
            "bias": ("t", True, np.zeros((1,))),  # integer b at the accumulator's scale, shaped (N,)
            "acc_shift": ("i", False, 0),  # f: fractional accumulator bits below the product's LSB
            "requant": ("i", False, 1),  # 0: the output is the accumulator itself
            "multiplier": ("i", False, 1),
            "shift": ("i", False, 0),
            "out_lo": ("i", False, 0),
            "out_hi": ("i", False, 0),
            "w_mem_style": ("s", False, "distributed", set(STYLES)),
        }

    # -- geometry ------------------------------------------------------------------------------------
    def weights(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("weights"), dtype=np.int64)

    def bias(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("bias"), dtype=np.int64)

    @property
    def in_features(self) -> int:
        return self.weights().shape[0]

    @property
    def out_features(self) -> int:
        return self.weights().shape[1]

    @property
    def rows(self) -> int:
        return int(np.prod(self.get_nodeattr("out_shape")[1:-1], dtype=np.int64))

    def in_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("in_dtype"))

    def weight_bits(self) -> int:
        w = self.weights()
        return max(bits_signed(int(w.min())), bits_signed(int(w.max())), 2)

    @property
    def acc_shift(self) -> int:
        return self.get_nodeattr("acc_shift")

    def acc_range(self) -> tuple[int, int]:
        return matmul_range(self.in_type(), self.weights() * 2**self.acc_shift, self.bias())

    def acc_bits(self) -> int:
        return max(bits_signed(v) for v in self.acc_range())

    def rescale(self) -> Rescale:
        return Rescale(self.get_nodeattr("multiplier"), self.get_nodeattr("shift"))

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = self.as_int(context[node.input[0]])
        acc = (x @ self.weights()) * 2**self.acc_shift + self.bias()
        if self.get_nodeattr("requant"):
            y = requantize(acc, self.rescale(), self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))
        else:
            y = acc
        context[node.output[0]] = y.astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def weight_memories(self) -> dict[str, Memory]:
        k, n = self.weights().shape
        return {"w": Memory(k * n, self.weight_bits(), self.get_nodeattr("w_mem_style"))}

    def rom_words(self, role: str) -> list[int]:
        if role != "w":
            raise KeyError(role)
        return [int(v) for v in self.weights().T.reshape(-1)]

    def cycles(self) -> int:
        return self.rows * self.in_features * self.out_features + PIPELINE_TAIL

    def logic_resources(self) -> dict[str, int]:
        x, acc_bits = self.in_type(), self.acc_bits()
        x_bits = x.bits + (0 if x.signed else 1)
        product_in_dsp = min(x_bits, self.weight_bits()) > 4
        rescale = self.rescale()
        rescale_dsp = rescale.multiplier > 1 and rescale.multiplier_bits > 4
        out_bits = self.out_type().bits
        counters = 3 * 8 + self.weight_memories()["w"].address_bits
        ff = counters + x_bits + self.weight_bits() + 2 * acc_bits + out_bits + 16
        lut = counters + acc_bits + (0 if product_in_dsp else x_bits * self.weight_bits())
        lut += out_bits * 2 + self.out_features  # saturation and the bias table
        return {"LUT": lut, "FF": ff, "DSP": int(product_in_dsp) + int(rescale_dsp) * (1 + (acc_bits > 25))}

    def template_context(self) -> dict:
        x = self.in_type()
        out = self.out_type()
        rescale = self.rescale()
        return {
            "rows": self.rows,
            "k": self.in_features,
            "n": self.out_features,
            "x_bits": x.bits,
            "x_signed": x.signed,
            "w_bits": self.weight_bits(),
            "w_abits": self.weight_memories()["w"].address_bits,
            "acc_bits": self.acc_bits(),
            "acc_shift": self.acc_shift,
            "bias": [int(v) for v in self.bias()],
            "requant": bool(self.get_nodeattr("requant")),
            "multiplier": rescale.multiplier,
            "multiplier_bits": rescale.multiplier_bits,
            "shift": rescale.shift,
            "out_lo": self.get_nodeattr("out_lo"),
            "out_hi": self.get_nodeattr("out_hi"),
            "out_bits": out.bits,
            "out_signed": out.signed,
        }
