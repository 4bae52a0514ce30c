"""The elementwise engine shared by IntAdd and IntAffine (template elementwise.vhd.j2).

One element per cycle through a pipeline of read, multiply, add and round/saturate.  Each multiplier
carries the ratio of an input scale to the output scale as a fixed-point integer, so one common shift
serves every term and the rounding happens once, after the sum.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from qonnx_spartan.intarith import IntType, bits_signed, shift_round_half_even
from qonnx_spartan.ops.base import SpartanOp, multiplier_dsps, multiplier_luts

#: Cycles from the last element's issue to the done pulse: read, multiply, add, round/saturate
#: (see the pipeline in elementwise.vhd.j2).
PIPELINE_DEPTH = 4

#: Largest shift `fixed_point` tries; numpy's int64 arithmetic stays exact below it.
MAX_SHIFT = 62


def fixed_point(*groups: tuple[np.ndarray, int]) -> tuple[list[np.ndarray], int]:
    """Integers round(values * 2**shift) for each (real values, bound) group, with the largest shift that
    keeps every group's magnitudes below its bound (precision is only limited by the hardware word).

    Common factors of two are then divided out: (x*m + o) / 2**s is the same number either way, and
    power-of-two ratios come out as small exact integers that need no multiplier."""
    values = [np.asarray(v, dtype=np.float64) for v, _ in groups]

    def scaled(shift: int) -> list[np.ndarray]:
        return [np.rint(v * 2.0**shift) for v in values]

    def fits(shift: int) -> bool:
        return all(np.all(np.abs(s) < bound) for s, (_, bound) in zip(scaled(shift), groups))

    if not fits(0):
        raise ValueError(f"values {[v.tolist() for v in values]} exceed their integer bounds")
    shift = 0
    while shift < MAX_SHIFT and fits(shift + 1):
        shift += 1
    ints = [s.astype(np.int64) for s in scaled(shift)]
    while shift > 0 and all(np.all(i % 2 == 0) for i in ints):
        ints = [i // 2 for i in ints]
        shift -= 1
    return ints, shift


def word_bits(values) -> int:
    """Bits of the two's complement word holding every value."""
    return max(bits_signed(int(v)) for v in np.asarray(values).ravel())


def multiplier_resources(operand_bits: int, multipliers: np.ndarray) -> dict[str, int]:
    """A constant power of two (or zero) is wiring; otherwise DSPs or LUTs as yosys maps the product."""
    values = np.unique(np.abs(np.asarray(multipliers, dtype=np.int64)))
    if len(values) == 1 and int(values[0]) & (int(values[0]) - 1) == 0:
        return {}
    mult_bits = word_bits(multipliers)
    return {"DSP": multiplier_dsps(operand_bits, mult_bits), "LUT": multiplier_luts(operand_bits, mult_bits)}


class Elementwise(SpartanOp):
    """y = clip(round_half_even((sum over terms of operand * multiplier[c] + offset[c]) / 2**shift)) over a
    row-major tensor whose last axis is the channel c; the first term's operand is port x."""

    template = "elementwise.vhd.j2"
    #: True when multipliers and offsets are per-channel tables indexed by a channel counter.
    per_channel = False

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "shift": ("i", False, 0),
            "out_lo": ("i", True, 0),
            "out_hi": ("i", True, 0),
        }

    # -- geometry ------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(np.prod(self.get_nodeattr("out_shape"), dtype=np.int64))

    @property
    def channels(self) -> int:
        return int(self.get_nodeattr("out_shape")[-1])

    @abstractmethod
    def terms(self) -> list[tuple[IntType, np.ndarray]]:
        """(operand type, multipliers) per summed operand; one multiplier, or one per channel."""

    def offsets(self) -> np.ndarray:
        """Added to the sum before rounding: one value, or one per channel."""
        return np.zeros(1, dtype=np.int64)

    def second_operand(self) -> str:
        """Where the second term's operand comes from: "z" (port), "rom" (weight memory "c"), "" (none)."""
        return ""

    def sum_range(self) -> tuple[int, int]:
        """Exact extremes over every input and channel of the sum, of each product and of the offsets
        (and 0, the registers' reset value): the one word width that holds them all."""
        offsets = np.asarray(self.offsets(), dtype=object)
        lo, hi = offsets, offsets
        extremes = [0, offsets.min(), offsets.max()]
        for dtype, mults in self.terms():
            mults = np.asarray(mults, dtype=object)
            p_lo = np.minimum(mults * dtype.lo, mults * dtype.hi)
            p_hi = np.maximum(mults * dtype.lo, mults * dtype.hi)
            lo, hi = lo + p_lo, hi + p_hi
            extremes += [p_lo.min(), p_hi.max()]
        extremes += [lo.min(), hi.max()]
        return int(min(extremes)), int(max(extremes))

    def sum_bits(self) -> int:
        return max(bits_signed(v) for v in self.sum_range())

    # -- the integer reference -----------------------------------------------------------------------
    def finish(self, acc: np.ndarray) -> np.ndarray:
        """Round the fixed-point sum to the output's LSB and saturate."""
        y = shift_round_half_even(acc, self.get_nodeattr("shift"))
        return np.clip(y, self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))

    # -- hardware ------------------------------------------------------------------------------------
    def cycles(self) -> int:
        return self.count + PIPELINE_DEPTH

    def logic_resources(self) -> dict[str, int]:
        abits = self.output_buffer().address_bits
        channel_bits = (self.channels - 1).bit_length() if self.per_channel else 0
        counters = 2 * abits + channel_bits  # issue index, write index (and channel)
        sum_bits, out_bits = self.sum_bits(), self.out_type().bits
        addends = len(self.terms()) + int(self.per_channel)
        lut = counters + sum_bits * addends + 2 * out_bits  # adders and rounding, saturation
        ff = counters + abits + 5 + sum_bits + out_bits  # + write address, valid bits and done
        multipliers = []
        for dtype, mults in self.terms():
            operand_bits = dtype.bits + (0 if dtype.signed else 1)
            ff += operand_bits + word_bits(mults)  # the product register
            multipliers.append(multiplier_resources(operand_bits, mults))
        if self.per_channel:
            table_bits = word_bits(self.terms()[0][1]) + sum_bits
            lut += -(-self.channels // 64) * table_bits  # LUT6 ROMs of 64 words
            ff += table_bits + sum_bits  # table outputs, offset delayed by one stage
        return {
            "LUT": lut + sum(m.get("LUT", 0) for m in multipliers),
            "FF": ff,
            "DSP": sum(m.get("DSP", 0) for m in multipliers),
        }

    def template_context(self) -> dict:
        terms = self.terms()
        x_type, x_mults = terms[0]
        context = {
            "op": self.onnx_node.op_type,
            "count": self.count,
            "channels": self.channels,
            "per_channel": self.per_channel,
            "x_bits": x_type.bits,
            "x_signed": x_type.signed,
            "x_mults": [int(v) for v in x_mults],
            "x_mult_bits": word_bits(x_mults),
            "offsets": [int(v) for v in self.offsets()],
            "second": self.second_operand(),
            "sum_bits": self.sum_bits(),
            "shift": self.get_nodeattr("shift"),
            **self.output_context(),
        }
        if len(terms) > 1:
            b_type, b_mults = terms[1]
            context.update(
                b_bits=b_type.bits, b_signed=b_type.signed, b_mult=int(b_mults[0]), b_mult_bits=word_bits(b_mults)
            )
        return context
