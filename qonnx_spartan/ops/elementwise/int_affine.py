"""IntAffine: y = clip(round_half_even((x * mult[c] + offset[c]) / 2**shift), out_lo, out_hi) with c the last
axis — a BatchNormalization folded into an integer affine map per channel.

Multipliers are signed (a BN gamma can be negative).  The per-channel tables are small, so the hardware
holds them as constant arrays indexed by a channel counter rather than in a ROM.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.ops.base import int_tensor, op_node
from qonnx_spartan.ops.elementwise.engine import Elementwise, fixed_point

#: Offsets are VHDL integer literals in the template: 32-bit two's complement.
OFFSET_LIMIT = 2**31


class IntAffine(Elementwise):
    per_channel = True

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            "mult": ("t", True, np.zeros(1, dtype=np.int64)),  # signed, shaped (C,)
            "offset": ("t", True, np.zeros(1, dtype=np.int64)),  # signed, shaped (C,)
        }

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        in_scale: float,
        gain: np.ndarray,
        bias: np.ndarray,
        out_type: IntType,
        out_scale: float,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
    ):
        """The node computing round((gain[c] * x*in_scale + bias[c]) / out_scale) clipped to [out_lo, out_hi]
        (the lowering folds BN into gain = gamma/sqrt(var+eps), bias = beta - gain*mean)."""
        if not (in_scale > 0 and out_scale > 0):
            raise ValueError(f"{name}: scales must be positive, got {in_scale}, {out_scale}")
        channels = int(out_shape[-1])
        gain = np.broadcast_to(np.asarray(gain, dtype=np.float64), (channels,))
        bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), (channels,))
        if not (np.all(np.isfinite(gain)) and np.all(np.isfinite(bias))):
            raise ValueError(f"{name}: gain and bias must be finite")
        (mult, offset), shift = fixed_point(
            (gain * in_scale / out_scale, 2**MULTIPLIER_BITS), (bias / out_scale, OFFSET_LIMIT)
        )
        return op_node(
            "IntAffine",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            mult=int_tensor("mult", mult),
            offset=int_tensor("offset", offset),
            shift=shift,
            out_lo=int(out_lo),
            out_hi=int(out_hi),
        )

    def mult(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("mult"), dtype=np.int64)

    def terms(self) -> list[tuple[IntType, np.ndarray]]:
        return [(self.in_type(), self.mult())]

    def offsets(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("offset"), dtype=np.int64)

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = self.input_as_output(context)
        context[node.output[0]] = self.finish(x * self.mult() + self.offsets()).astype(np.float32)
