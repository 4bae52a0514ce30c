"""Arithmetic on Python integers (no int64 to wrap) for the ops' exact recomputations, and the extreme
values they are driven with (tests/test_overflow.py; each op's test module recomputes its op with these)."""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import IntType

INT2, INT8, INT16 = IntType(True, 2), IntType(True, 8), IntType(True, 16)
UINT4, UINT8 = IntType(False, 4), IntType(False, 8)
M17 = (1 << 17) - 1  # the widest requantisation multiplier


def half_even(v: int, s: int) -> int:
    """v / 2**s rounded half to even."""
    q, r = divmod(v, 1 << s)
    return q + (2 * r > (1 << s) or (s > 0 and 2 * r == (1 << s) and q % 2 == 1))


def shift_rounded(v: int, s: int, tie_bits: int = 0) -> int:
    """The hardware's rounding of a v that already holds the half (qs_arith.shift_rounded of v's bits from
    tie_bits up): v / 2**s floored, bit 0 cleared when the bits s-1 .. tie_bits are all 0 (a tie)."""
    q = v >> s
    return q & ~1 if s > 0 and (v >> tie_bits) & ((1 << (s - tie_bits)) - 1) == 0 else q


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def fits_signed(v: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= v < (1 << (bits - 1))


def check_widths(held: dict[str, list[int]], widths: dict[str, int], unsigned=()) -> None:
    """Every value of each register in `held` fits the bits `widths` declares for it."""
    for register, values in held.items():
        if register in unsigned:
            assert all(0 <= v < 1 << widths[register] for v in values), register
        else:
            assert all(fits_signed(v, widths[register]) for v in values), register


def extremes(t: IntType, size: int, period: int = 1) -> list[list[int]]:
    """All minimum, all maximum, and alternating runs of `period` minimums and maximums, both ways."""
    alternating = [t.hi if (i // period) % 2 else t.lo for i in range(size)]
    return [[t.lo] * size, [t.hi] * size, alternating, [t.lo + t.hi - v for v in alternating]]


def extreme_columns(t: IntType, k: int) -> np.ndarray:
    """Weights (k, 4): a column of minimums, one of maximums, two alternating."""
    return np.array(extremes(t, k)).T
