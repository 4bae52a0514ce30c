"""Integer arithmetic shared by every op: the one Python definition the VHDL package qs_arith mirrors.

Rescaling a wide integer by a real ratio r is done as  y = saturate(round_half_even(acc * M / 2**s))
with an unsigned integer multiplier M and a shift s.  Half-to-even is what QONNX's Quant node does for
rounding_mode ROUND (numpy.round, torch.round), so for power-of-two scales the integer graph reproduces the
Brevitas model exactly instead of differing on every tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: Width of the unsigned requantisation multiplier M: relative error <= 2**-17 keeps the rescaled value
#: within 1/512 of an output LSB over an 8-bit output range, and M (signed: 18 bits) fits the DSP48E1's
#: 18-bit B port (UG479).
MULTIPLIER_BITS = 17


@dataclass(frozen=True)
class IntType:
    """Range and storage of an integer tensor: signed two's complement or unsigned, `bits` wide."""

    signed: bool
    bits: int

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @classmethod
    def for_range(cls, lo: int, hi: int) -> "IntType":
        """Narrowest type holding every integer of [lo, hi]."""
        if lo >= 0:
            return cls(False, max(1, int(hi).bit_length()))
        return cls(True, max(bits_signed(lo), bits_signed(hi)))

    @property
    def name(self) -> str:
        """QONNX DataType name (INTb / UINTb)."""
        return f"{'INT' if self.signed else 'UINT'}{self.bits}"

    @classmethod
    def from_name(cls, name: str) -> "IntType":
        m = re.fullmatch(r"(U?)INT(\d+)", name)
        if not m:
            raise ValueError(f"not an integer data type: {name}")
        return cls(not m.group(1), int(m.group(2)))


def bits_signed(v: int) -> int:
    """Bits of a two's complement number holding v."""
    v = int(v)
    return (v if v >= 0 else ~v).bit_length() + 1


@dataclass(frozen=True)
class Rescale:
    """y = round_half_even(x * multiplier / 2**shift): an integer approximation of a real ratio."""

    multiplier: int
    shift: int

    @classmethod
    def from_ratio(cls, ratio: float) -> "Rescale":
        """Closest M, s with M < 2**MULTIPLIER_BITS; powers of two come out as M = 1 (no multiplier)."""
        if not ratio > 0 or not np.isfinite(ratio):
            raise ValueError(f"rescale ratio must be positive and finite, not {ratio:g}")
        frac = Fraction(ratio)
        shift = 0
        limit = (1 << MULTIPLIER_BITS) - 1
        while frac * 2 ** (shift + 1) <= limit and shift < 62:
            shift += 1
        multiplier = round(frac * 2**shift)
        while multiplier % 2 == 0 and shift > 0:
            multiplier //= 2
            shift -= 1
        if multiplier == 0:
            raise ValueError(f"rescale ratio {ratio:g} is too small to represent")
        if multiplier > limit:
            raise ValueError(f"rescale ratio {ratio:g} is too large to represent (at most {limit})")
        return cls(int(multiplier), shift)

    @property
    def ratio(self) -> float:
        return self.multiplier / 2**self.shift

    @property
    def multiplier_bits(self) -> int:
        return int(self.multiplier).bit_length()

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Rescale int64 values (no saturation)."""
        return shift_round_half_even(np.asarray(x, dtype=np.int64) * self.multiplier, self.shift)


def shift_round_half_even(v: np.ndarray, shift: int) -> np.ndarray:
    """v / 2**shift rounded half to even, computed on integers exactly as the VHDL does."""
    v = np.asarray(v, dtype=np.int64)
    if shift == 0:
        return v
    floor = v >> shift
    rem = v & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    round_up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    return floor + round_up.astype(np.int64)


def requantize(acc: np.ndarray, rescale: Rescale, lo: int, hi: int) -> np.ndarray:
    """The requantisation every op ends with: rescale, round half to even, clamp to [lo, hi]."""
    return np.clip(rescale.apply(acc), lo, hi)


def matmul_range(x: IntType, weights: np.ndarray, bias: np.ndarray | None = None) -> tuple[int, int]:
    """Exact extremes of x @ weights + bias over every x in range, for weights shaped (K, N)."""
    w = np.asarray(weights)
    bias_bound = int(np.abs(np.asarray(bias)).max(initial=0)) if bias is not None else 0
    bound = int(np.abs(w).max(initial=0)) * max(abs(x.lo), abs(x.hi)) * max(w.shape[0], 1) + bias_bound
    w = w.astype(np.int64 if bound < 2**62 else object)  # exact either way; int64 is fast
    lo_terms = np.minimum(w * x.lo, w * x.hi)
    hi_terms = np.maximum(w * x.lo, w * x.hi)
    lo = lo_terms.sum(axis=0)
    hi = hi_terms.sum(axis=0)
    if bias is not None:
        lo = lo + np.asarray(bias, dtype=object)
        hi = hi + np.asarray(bias, dtype=object)
    return int(min(lo.min(), 0)), int(max(hi.max(), 0))
