"""IntAffine: y = clip(round_half_even((x * mult[c] + offset[c]) / 2**shift), out_lo, out_hi) with c the last
axis — a BatchNormalization folded into an integer affine map per channel.

Multipliers are signed (a BN gamma can be negative).  The per-channel multipliers and offsets are one ROM
(role "t", a word per channel: the offset above the multiplier) read by a channel counter.  Left to
synthesis as a constant array, a 64-channel table took two to three LUTs per bit column instead of the one
LUT6 its cells need (docs/estimator.md); as a ROM it is built from cells and counted exactly.  It stays in
LUTs when every memory goes to block RAM; the budget or a plan may move it there.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.memory import STYLES, Memory, rom_of_rows
from qonnx_spartan.ops.base import int_tensor, op_node
from qonnx_spartan.ops.elementwise.engine import Elementwise, fixed_point, word_bits
from qonnx_spartan.rom_cells import bit_rows

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
            "t_mem_style": ("s", False, "distributed", set(STYLES)),
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

    # -- the table ROM -------------------------------------------------------------------------------
    def table_fields(self) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
        """(values, bits) of the table's two fields, low bits first: the multipliers, then the offsets the
        hardware adds (with the rounding half)."""
        mults = self.mult()
        return (mults, word_bits(mults)), (self.sum_offsets(), self.sum_bits())

    def weight_memories(self) -> dict[str, Memory]:
        rows = np.hstack([bit_rows(values[:, None], bits) for values, bits in self.table_fields()])
        return {"t": rom_of_rows(rows, self.get_nodeattr("t_mem_style"), table=True)}

    def rom_words(self, role: str) -> list[int]:
        if role != "t":
            raise KeyError(role)
        (mults, mult_bits), (offsets, offset_bits) = self.table_fields()
        low = (1 << mult_bits) - 1
        return [((int(o) & ((1 << offset_bits) - 1)) << mult_bits) | (int(m) & low) for m, o in zip(mults, offsets)]

    def template_context(self) -> dict:
        return {**super().template_context(), "t_abits": self.weight_memories()["t"].address_bits}
