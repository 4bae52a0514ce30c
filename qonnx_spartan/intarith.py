"""Integer arithmetic shared by every op: the one Python definition the VHDL package qs_arith mirrors.

Rescaling a wide integer by a real ratio r is done as  y = saturate(round_half_even(acc * M / 2**s))
with an unsigned integer multiplier M and a shift s.  Half-to-even is what QONNX's Quant node does for
rounding_mode ROUND (numpy.round, torch.round), so for power-of-two scales the integer graph reproduces the
Brevitas model exactly instead of differing on every tie.  A ratio p/q whose q is not a power of two (a
mean over 6 steps: 1/6) has no exact M, s; `Rescale.for_fraction` rounds acc * p/q itself half to even, for
every acc of a known range, with a rounding offset and a narrower tie test (docs/architecture.md).
"""

from __future__ import annotations

import math
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
    """y = round_half_even(x * multiplier / 2**shift): an integer approximation of a real ratio.

    With an offset or tie bits (`for_fraction`) the hardware's form is the definition:
    v = x * multiplier + 2**(shift-1) + offset, y = v / 2**shift floored, bit 0 cleared when v's bits
    shift-1 .. tie_bits are all 0."""

    multiplier: int
    shift: int
    offset: int = 0
    tie_bits: int = 0

    @classmethod
    def from_ratio(cls, ratio: float) -> "Rescale":
        """Closest M, s with M < 2**MULTIPLIER_BITS; powers of two come out as M = 1 (no multiplier)."""
        if not ratio > 0 or not np.isfinite(ratio):
            raise ValueError(f"rescale ratio must be positive and finite, not {ratio:g}")
        frac = Fraction(ratio)
        shift = widest_shift(frac)
        multiplier = round(frac * 2**shift)
        while multiplier % 2 == 0 and shift > 0:
            multiplier //= 2
            shift -= 1
        if multiplier == 0:
            raise ValueError(f"rescale ratio {ratio:g} is too small to represent")
        if multiplier > (1 << MULTIPLIER_BITS) - 1:
            raise ValueError(f"rescale ratio {ratio:g} is too large to represent (at most {(1 << MULTIPLIER_BITS) - 1})")
        return cls(int(multiplier), shift)

    @classmethod
    def for_fraction(cls, ratio: Fraction, lo: int, hi: int) -> "Rescale | None":
        """M, s, offset and tie bits that give round_half_even(x * ratio) exactly for every integer x in
        [lo, hi] (lo <= 0 <= hi), or None when the range is too wide for a MULTIPLIER_BITS multiplier.

        With M the closest to ratio * 2**s and d = M - ratio * 2**s (|d| <= 1/2), the hardware's
        v = x*M + 2**(s-1) + c equals 2**s * (x*ratio + 1/2) + e with e = x*d + c.  x*ratio + 1/2 is a
        multiple of 1/g (g = q for an even denominator q, 2q for an odd one): an integer on an exact tie,
        else at least 1/g away from one.  So with 0 <= e < 2**t <= 2**s / g for every x, v / 2**s floored
        is round-half-up, and a tie is exactly when v's bits s-1 .. t are all 0 (below t lies e): clearing
        bit 0 then rounds it to even.  c lifts the most negative x*d to 0."""
        ratio = Fraction(ratio)
        p, q = ratio.numerator, ratio.denominator
        if ratio <= 0 or lo > 0 or hi < 0:
            raise ValueError(f"need a positive ratio and lo <= 0 <= hi, not {ratio}, [{lo}, {hi}]")
        if q & (q - 1) == 0:  # a power of two: M = p, no rounding error at all
            return cls(p, q.bit_length() - 1) if p < 1 << MULTIPLIER_BITS else None
        shift = widest_shift(ratio)
        multiplier = round(ratio * 2**shift)
        if not 0 < multiplier < 1 << MULTIPLIER_BITS:
            return None
        d = multiplier - ratio * 2**shift
        g = q if q % 2 == 0 else 2 * q
        tie_bits = shift - (g - 1).bit_length()  # 2**tie_bits <= 2**shift / g
        offset = math.ceil(-min(lo * d, hi * d))
        if tie_bits < 0 or offset + max(lo * d, hi * d) >= 2**tie_bits or offset >= 2**31:
            return None  # (the offset is a VHDL integer in the templates)
        return cls(int(multiplier), shift, offset, tie_bits)

    @property
    def ratio(self) -> float:
        return self.multiplier / 2**self.shift

    @property
    def multiplier_bits(self) -> int:
        return int(self.multiplier).bit_length()

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Rescale int64 values (no saturation)."""
        v = np.asarray(x, dtype=np.int64) * self.multiplier
        if self.offset == 0 and self.tie_bits == 0:
            return shift_round_half_even(v, self.shift)
        return shift_rounded(v + (1 << (self.shift - 1)) + self.offset, self.shift, self.tie_bits)


def widest_shift(ratio: Fraction) -> int:
    """The largest shift s (at most 62) with ratio * 2**s below 2**MULTIPLIER_BITS: the most precise M."""
    shift, limit = 0, (1 << MULTIPLIER_BITS) - 1
    while ratio * 2 ** (shift + 1) <= limit and shift < 62:
        shift += 1
    return shift


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


def shift_rounded(v: np.ndarray, shift: int, tie_bits: int = 0) -> np.ndarray:
    """The hardware's output stage (qs_arith.shift_rounded over v's bits from tie_bits up): v / 2**shift
    floored, bit 0 cleared when v's bits shift-1 .. tie_bits are all 0.  For v = x + 2**(shift-1) and no
    tie bits, that is x / 2**shift rounded half to even."""
    v = np.asarray(v, dtype=np.int64)
    floor = v >> shift
    tie = ((v >> tie_bits) & ((1 << (shift - tie_bits)) - 1)) == 0
    return np.where(tie, floor & ~1, floor)


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
