"""The elementwise engine shared by IntAdd and IntAffine (template elementwise.vhd.j2).

One element per cycle through a pipeline of read, multiply, add and round/saturate.  Each multiplier
carries the ratio of an input scale to the output scale as a fixed-point integer, so one common shift
serves every term and the rounding happens once, after the sum.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from qonnx_spartan.intarith import IntType, bits_signed, shift_round_half_even
from qonnx_spartan.ops.base import (
    SpartanOp,
    Trace,
    can_force_logic,
    counter_bits,
    forced_product_luts,
    multiplier_dsps,
    multiplier_luts,
    streamed,
)

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
        worst = max(float(np.abs(v).max(initial=0)) for v in values)
        raise ValueError(f"a scale ratio, gain or offset (up to {worst:g}) is too large for the integer datapath")
    shift = 0
    while shift < MAX_SHIFT and fits(shift + 1):
        shift += 1
    ints = [s.astype(np.int64) for s in scaled(shift)]
    while shift > 0 and all(np.all(i % 2 == 0) for i in ints):
        ints = [i // 2 for i in ints]
        shift -= 1
    return ints, shift


def signed_bits(dtype: IntType) -> int:
    """Width of an operand as the template multiplies it: signed, an unsigned one a bit wider."""
    return dtype.bits + (0 if dtype.signed else 1)


def word_bits(values) -> int:
    """Bits of the two's complement word holding every value."""
    return max(bits_signed(int(v)) for v in np.asarray(values).ravel())


def is_wiring(multipliers: np.ndarray) -> bool:
    """A single multiplier that is zero or a power of two is a shift: no multiplier is built."""
    values = np.unique(np.abs(np.asarray(multipliers, dtype=np.int64)))
    return len(values) == 1 and int(values[0]) & (int(values[0]) - 1) == 0


def term_dsps(operand_bits: int, multipliers: np.ndarray) -> int:
    """DSPs of one term.  A table of multipliers (IntAffine) multiplies two registers.  GHDL writes a
    product by a constant with both operands sign-extended to the product's width; yosys narrows them
    again when the constant is odd, but takes an even one's factor of two out as a shift and keeps an
    unsigned product of the full-width operand and the odd part, which can take a second DSP."""
    if is_wiring(multipliers):
        return 0
    constant = abs(int(multipliers[0]))
    if len(multipliers) > 1 or constant % 2:
        return multiplier_dsps(operand_bits, word_bits(multipliers))
    odd = constant >> ((constant & -constant).bit_length() - 1)
    return multiplier_dsps(operand_bits + word_bits(multipliers) + 1, odd.bit_length() + 1)


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
            # the first terms whose product, wide enough for a DSP48E1, is built in LUTs (qs_mul_logic):
            # the lanes step asks for them when the DSPs overflow
            "logic_terms": ("i", False, 0),
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

    def product_shifts(self) -> list[int]:
        """Per term, the left shift of its product before the sum (wiring): 0 but where a term's multiplier
        is held with its own precision (IntAdd)."""
        return [0] * len(self.terms())

    def offsets(self) -> np.ndarray:
        """Added to the sum before rounding: one value, or one per channel."""
        return np.zeros(1, dtype=np.int64)

    def rounding_half(self) -> int:
        """2**(shift-1) when the hardware adds it to the sum, in the per-channel offsets where it costs
        nothing: the output stage then rounds half to even by flooring and clearing bit 0 on a tie
        (`shift_rounded` in templates/qs_arith.vhd), without an incrementer.  A sum without offsets keeps
        the incrementer: a constant third term cost more than it saved (measured on the Transformers' adds,
        whose DSP post-adder then left the sum's register in the fabric)."""
        shift = self.get_nodeattr("shift")
        return 1 << (shift - 1) if shift > 0 and self.per_channel else 0

    def sum_offsets(self) -> np.ndarray:
        """What the hardware adds to the products: the offsets and the rounding half."""
        return np.asarray(self.offsets(), dtype=np.int64) + self.rounding_half()

    def second_operand(self) -> str:
        """Where the second term's operand comes from: "z" (port), "rom" (weight memory "c"), "" (none)."""
        return ""

    def sum_range(self) -> tuple[int, int]:
        """Exact extremes over every input and channel of the sum, of each product and of the offsets
        (and 0, the registers' reset value): the one word width that holds them all."""
        offsets = np.asarray(self.sum_offsets(), dtype=object)
        lo, hi = offsets, offsets
        extremes = [0, offsets.min(), offsets.max()]
        for (dtype, mults), shift in zip(self.terms(), self.product_shifts()):
            mults = np.asarray(mults, dtype=object) * 2**shift
            p_lo = np.minimum(mults * dtype.lo, mults * dtype.hi)
            p_hi = np.maximum(mults * dtype.lo, mults * dtype.hi)
            lo, hi = lo + p_lo, hi + p_hi
            extremes += [p_lo.min(), p_hi.max()]
        extremes += [lo.min(), hi.max()]
        return int(min(extremes)), int(max(extremes))

    def sum_bits(self) -> int:
        """The sum's word: its range (with the rounding half, at least two bits above the shifted-out ones)."""
        bits = max(bits_signed(v) for v in self.sum_range())
        return max(bits, self.get_nodeattr("shift") + 2) if self.rounding_half() else bits

    # -- the integer reference -----------------------------------------------------------------------
    def finish(self, acc: np.ndarray) -> np.ndarray:
        """Round the fixed-point sum to the output's LSB and saturate."""
        y = shift_round_half_even(acc, self.get_nodeattr("shift"))
        return np.clip(y, self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))

    # -- hardware ------------------------------------------------------------------------------------
    def cycles(self) -> int:
        return self.count + PIPELINE_DEPTH

    def read_trace(self, port: str) -> Trace:
        return streamed(self.count, PIPELINE_DEPTH)[0]

    def write_trace(self) -> Trace:
        return streamed(self.count, PIPELINE_DEPTH)[1]

    resource_group = "elementwise"

    def dsps(self) -> int:
        return sum(
            term_dsps(signed_bits(dtype), mults)
            for i, (dtype, mults) in enumerate(self.terms())
            if not self.term_in_logic(i)
        )

    def term_can_be_logic(self, i: int) -> bool:
        """Whether term i's product takes DSPs and could be built in LUTs instead (a form booth maps)."""
        dtype, mults = self.terms()[i]
        return term_dsps(signed_bits(dtype), mults) > 0 and can_force_logic(signed_bits(dtype), word_bits(mults))

    def term_in_logic(self, i: int) -> bool:
        """Whether term i multiplies in LUTs (qs_mul_logic) although its product would take DSPs."""
        return i < self.get_nodeattr("logic_terms") and self.term_can_be_logic(i)

    def logic_term_widths(self) -> list[tuple[int, int]]:
        """(operand, multiplier) signed widths of the terms built in LUTs."""
        return [
            (signed_bits(dtype), word_bits(mults))
            for i, (dtype, mults) in enumerate(self.terms())
            if self.term_in_logic(i)
        ]

    def exact_resources(self) -> dict[str, int]:
        """The DSPs, and each term built in LUTs: its multiplier as calibration/logic_products.py measured it
        (the entity is kept: a constant multiplier is not folded into it) and its product register.  With no
        DSP left, the sum's adder and register, which a DSP's post-adder and P register held, are logic too:
        one LUT and one flip-flop per bit."""
        resources = super().exact_resources()
        widths = self.logic_term_widths()
        if widths:
            sum_in_fabric = self.sum_bits() if resources["DSP"] == 0 else 0
            resources["LUT"] = sum(forced_product_luts(a, b) for a, b in widths) + sum_in_fabric
            resources["FF"] = sum(a + b for a, b in widths) + sum_in_fabric
        return resources

    def resource_features(self) -> dict[str, float]:
        sum_bits, out_bits, shift = self.sum_bits(), self.out_type().bits, self.get_nodeattr("shift")
        features = {
            "one": 1,
            "index_bits": counter_bits(self.count),
            "channel_bits": counter_bits(self.channels) if self.per_channel else 0,
            "product_logic_bits": 0,
            "product_dsp_bits": 0,
            "multiplier_luts": 0,
            "product_forced_bits": 0,
            "sum_bits": sum_bits,
            "adder_bits": sum_bits * (len(self.terms()) - 1 + int(self.per_channel)),
            "offset_register_bits": sum_bits if self.per_channel else 0,  # the table's offset, one stage on
            "round_bits": sum_bits - shift,
            "shift_bits": shift,
            "out_bits": out_bits,
        }
        for i, (dtype, mults) in enumerate(self.terms()):
            operand_bits, mult_bits = signed_bits(dtype), word_bits(mults)
            if self.term_in_logic(i):
                # its multiplier and register are counted (exact_resources); what joins it to the sum is not
                features["product_forced_bits"] += operand_bits + mult_bits
                continue
            if is_wiring(mults):
                features["product_logic_bits"] += operand_bits  # a shifted copy of the operand
            elif multiplier_dsps(operand_bits, mult_bits):
                features["product_dsp_bits"] += operand_bits + mult_bits
            else:
                features["product_logic_bits"] += operand_bits + mult_bits
                features["multiplier_luts"] += multiplier_luts(operand_bits, mult_bits)
        return features

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
            "half_added": self.rounding_half() > 0,
            "second": self.second_operand(),
            "sum_bits": self.sum_bits(),
            "shift": self.get_nodeattr("shift"),
            "x_logic": self.term_in_logic(0),
            "b_logic": len(terms) > 1 and self.term_in_logic(1),
            **self.output_context(),
        }
        shifts = self.product_shifts()
        context["x_shift"] = shifts[0]
        if len(terms) > 1:
            b_type, b_mults = terms[1]
            context.update(
                b_bits=b_type.bits,
                b_signed=b_type.signed,
                b_mult=int(b_mults[0]),
                b_mult_bits=word_bits(b_mults),
                b_shift=shifts[1],
            )
        return context
