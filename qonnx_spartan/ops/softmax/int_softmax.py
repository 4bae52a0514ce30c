"""IntSoftmax: an integer-only softmax over the last axis, y ~ softmax(x * in_scale) / out_scale.

exp(-(max - x) * in_scale) is read from a table indexed by max - x, so the table's size depends on the
input type only and every entry lies in [0, 2**EXP_BITS].  One integer reciprocal of the row's sum,
r = 2**recip_bits // sum, turns the division of every element into a multiplication:
y = saturate(round_half_even(e * r * M / 2**s)).  All of it is exact in int64 (checked by make_node).

Hardware: per row a data-independent sequence of issue cycles: find the maximum (one read per element),
sum the table entries (a second read), a restoring divider (one quotient bit per cycle, then r * M once),
and a third read that writes e * r * M rescaled.  Every issue cycle sends a tag down one pipeline, so the
passes follow each other without bubbles and the cycle count is fixed.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType, Rescale, requantize
from qonnx_spartan.memory import STYLES, Memory, address_bits, rom
from qonnx_spartan.ops.base import (
    SpartanOp,
    Trace,
    counter_bits,
    multiplier_dsps,
    multiplier_luts,
    op_node,
    pass_traces,
)

#: exp(0) in the table is 2**EXP_BITS: a relative precision of 2**-15 per term.
EXP_BITS = 15
#: Significant bits of the reciprocal at the largest possible sum (every term exp(0)); the reciprocal's
#: truncation then moves an output by at most 2**-15 of its value.
RECIP_PRECISION_BITS = 16
#: Products e * r * M must stay below this so that the int64 reference cannot overflow.
INT64_LIMIT = 1 << 62
#: Cycles from the last issue to the done pulse, which comes with the last write: x read, table address,
#: table read, product, rescale and saturate (see softmax.vhd.j2).
PIPELINE_TAIL = 5

#: LUTs of the exponent clamp per compared bit, measured apart by calibration/softmax_clamp.py: the softmax of
#: two corpus models synthesised with and without the clamp at 16-bit scores took 9 and 8 LUTs more, no FF.
CLAMP_LUTS_PER_BIT = 17 / 32


class IntSoftmax(SpartanOp):
    template = "softmax.vhd.j2"

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            # exp(-d * in_scale) * 2**EXP_BITS, rounded, for d = max - x in 0 .. in.hi - in.lo
            "exp_table": ("t", True, np.zeros((1,))),
            "recip_bits": ("i", True, 0),  # RB: the row's reciprocal is 2**RB // sum
            "multiplier": ("i", False, 1),
            "shift": ("i", False, 0),
            "out_lo": ("i", True, 0),
            "out_hi": ("i", True, 0),
            "exp_mem_style": ("s", False, "distributed", set(STYLES)),
            # 0, or the last table index: larger distances read it (exp has rounded to 0 there)
            "exp_clamp": ("i", False, 0),
        }

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        in_scale: float,
        out_type: IntType,
        out_scale: float,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
        clamp: bool = False,
    ):
        """The node for a softmax over the last axis of an integer tensor with real scale in_scale, whose
        result is quantised to out_type with scale out_scale and clipped to [out_lo, out_hi].  With `clamp`
        the table ends at its first entry that rounds to 0 and larger distances read that entry: the input
        may then be wide (scores kept at a fine scale) without a table over its whole range."""
        span = in_type.hi - in_type.lo + 1
        if clamp:
            span = min(span, int(np.ceil((EXP_BITS + 1) * np.log(2) / in_scale)) + 1)
        distance = np.arange(span)
        exp_table = np.round(np.exp(-distance * in_scale) * 2**EXP_BITS).astype(np.int64)
        last = len(exp_table) - 1 if clamp and len(exp_table) < in_type.hi - in_type.lo + 1 else 0
        if last and exp_table[last] != 0:
            raise AssertionError("a clamped exp table must end at 0")
        largest_sum = out_shape[-1] * 2**EXP_BITS
        recip_bits = RECIP_PRECISION_BITS - 1 + (largest_sum - 1).bit_length()
        rescale = Rescale.from_ratio(1 / (out_scale * 2**recip_bits))
        # e * r <= 2**recip_bits: the largest term, exp(0), is part of every sum
        if (1 << recip_bits) * rescale.multiplier >= INT64_LIMIT:
            raise SpartanError(
                f"node {name}: softmax rows of {out_shape[-1]} elements are too long for the 64-bit integer softmax"
            )
        table = helper.make_tensor("exp_table", TensorProto.INT64, [len(exp_table)], exp_table.tolist())
        return op_node(
            "IntSoftmax",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            exp_table=table,
            recip_bits=recip_bits,
            multiplier=rescale.multiplier,
            shift=rescale.shift,
            out_lo=int(out_lo),
            out_hi=int(out_hi),
            **({"exp_clamp": int(last)} if last else {}),
        )

    # -- geometry ------------------------------------------------------------------------------------
    def exp_table(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("exp_table"), dtype=np.int64)

    @property
    def length(self) -> int:
        return self.get_nodeattr("out_shape")[-1]

    @property
    def rows(self) -> int:
        return int(np.prod(self.get_nodeattr("out_shape")[1:-1], dtype=np.int64))

    @property
    def recip_bits(self) -> int:
        return self.get_nodeattr("recip_bits")

    def rescale(self) -> Rescale:
        return Rescale(self.get_nodeattr("multiplier"), self.get_nodeattr("shift"))

    def largest_recip(self) -> int:
        """The reciprocal of the smallest sum, the row maximum's own term exp_table[0]."""
        return (1 << self.recip_bits) // int(self.exp_table()[0])

    def widths(self) -> dict[str, int]:
        """Bits of the hardware's unsigned registers, from the exact bounds of their values."""
        exp_max = int(self.exp_table().max())
        recip = self.largest_recip()
        multiplier = self.rescale().multiplier
        return {
            "exp_bits": max(1, exp_max.bit_length()),
            "sum_bits": (self.length * exp_max).bit_length(),
            "recip_width": recip.bit_length(),
            "scaled_recip_bits": (recip * multiplier).bit_length(),
            "product_bits": (exp_max * recip * multiplier).bit_length(),
        }

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = self.input_as_output(context)
        distance = x.max(axis=-1, keepdims=True) - x
        if self.get_nodeattr("exp_clamp"):
            distance = np.minimum(distance, self.get_nodeattr("exp_clamp"))
        e = self.exp_table()[distance]
        recip = (1 << self.recip_bits) // e.sum(axis=-1, keepdims=True)
        y = requantize(e * recip, self.rescale(), self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))
        context[node.output[0]] = y.astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def weight_memories(self) -> dict[str, Memory]:
        table = self.exp_table()
        return {"exp": rom(len(table), table, self.widths()["exp_bits"], self.get_nodeattr("exp_mem_style"))}

    def rom_words(self, role: str) -> list[int]:
        if role != "exp":
            raise KeyError(role)
        return [int(v) for v in self.exp_table()]

    def divide_cycles(self) -> int:
        """One cycle per quotient bit of the reciprocal, then one for r * M."""
        return self.widths()["recip_width"] + 1

    def cycles(self) -> int:
        return self.rows * (3 * self.length + self.divide_cycles()) + PIPELINE_TAIL

    def row_passes(self) -> tuple[np.ndarray, np.ndarray]:
        """(addresses, issue cycles) of element i of row r in each pass: FIND_MAX, SUM_EXP and WRITE_OUT read
        it at issue cycles 1 + r T + i, + L, + 2L + divide (T = 3L + divide: the row's period)."""
        rows, length, divide = self.rows, self.length, self.divide_cycles()
        element = np.arange(rows * length, dtype=np.int64).reshape(rows, 1, length)
        period = 3 * length + divide
        passes = np.array([0, length, 2 * length + divide], dtype=np.int64).reshape(1, 3, 1)
        first = 1 + np.arange(rows, dtype=np.int64).reshape(rows, 1, 1) * period + element % length
        return np.broadcast_to(element, (rows, 3, length)), first + passes

    def read_trace(self, port: str) -> Trace:
        return pass_traces(*self.row_passes(), PIPELINE_TAIL)[0]

    def write_trace(self) -> Trace:
        """WRITE_OUT's element i is written PIPELINE_TAIL cycles after its issue, in address order."""
        return pass_traces(*self.row_passes(), PIPELINE_TAIL)[1]

    resource_group = "softmax"

    def products(self) -> tuple[tuple[int, int], tuple[int, int] | None]:
        """Signed operand widths of e * (r * M) and, when M is not 1, of r * M (unsigned operands count one
        bit more on the signed DSP48E1)."""
        w, rescale = self.widths(), self.rescale()
        shifts_only = rescale.multiplier & (rescale.multiplier - 1) == 0  # a power of two is wiring
        recip_scaling = None if shifts_only else (w["recip_width"] + 1, rescale.multiplier_bits + 1)
        return (w["exp_bits"] + 1, w["scaled_recip_bits"] + 1), recip_scaling

    def dsps(self) -> int:
        return sum(multiplier_dsps(*p) for p in self.products() if p is not None)

    def clamp_bits(self) -> int:
        """Bits of `max - x` the clamp (unquantised scores) compares with the table's last index."""
        return self.in_type().bits if self.get_nodeattr("exp_clamp") else 0

    def exact_resources(self) -> dict[str, int]:
        """Counted or measured apart, not fitted: the tag bits that only the third pipeline stage reads shift
        through as one SRL (a LUTRAM), and the clamp's comparator and multiplexer, CLAMP_LUTS_PER_BIT per
        compared bit (no calibration design has a clamped softmax, so the fit cannot weigh it)."""
        return {"DSP": self.dsps(), "LUT": 1 + round(CLAMP_LUTS_PER_BIT * self.clamp_bits()), "LUTRAM": 1}

    def resource_features(self) -> dict[str, float]:
        w = self.widths()
        x_bits, out_bits, shift = self.in_type().bits, self.out_type().bits, self.rescale().shift
        addr = address_bits(self.rows * self.length)
        exp_product, recip_scaling = self.products()
        logic = [p for p in (exp_product, recip_scaling) if p is not None and not multiplier_dsps(*p)]
        on_dsp = [p for p in (exp_product, recip_scaling) if p is not None and multiplier_dsps(*p)]
        return {
            "one": 1,
            "counter_bits": counter_bits(max(self.length, self.divide_cycles()))
            + counter_bits(self.rows)
            + counter_bits(self.rows * self.length + 1),
            "address_bits": 3 * addr,  # read address, row base, write address
            "x_bits": x_bits,
            "sum_bits": w["sum_bits"],
            "recip_bits": w["recip_width"],
            "scaled_recip_bits": w["scaled_recip_bits"],
            "product_logic_bits": sum(a + b for a, b in logic),
            "multiplier_luts": sum(multiplier_luts(*p) for p in logic),
            "product_dsp_bits": sum(a + b for a, b in on_dsp),
            "round_bits": w["product_bits"] - shift,
            "shift_bits": shift,
            "out_bits": out_bits,
        }

    def template_context(self) -> dict:
        x = self.in_type()
        rescale = self.rescale()
        w = self.widths()
        return {
            **w,
            "rows": self.rows,
            "length": self.length,
            "x_bits": x.bits,
            "x_signed": x.signed,
            "clamp": self.get_nodeattr("exp_clamp"),
            "distance_bits": address_bits(len(self.exp_table())),
            # the restoring divider's first remainder: 2**RB without its recip_width low bits (zeros), which
            # is below the smallest sum exp_table[0], as restoring division requires
            "divider_init": (1 << self.recip_bits) >> w["recip_width"],
            "multiplier": rescale.multiplier,
            "multiplier_bits": rescale.multiplier_bits,
            "shift": rescale.shift,
            **self.output_context(),
        }
