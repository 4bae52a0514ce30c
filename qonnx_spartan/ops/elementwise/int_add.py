"""IntAdd: y = clip(round_half_even((a * mult_a + b * mult_b) / 2**shift), out_lo, out_hi) — a residual add
of two tensors with different scales, or a tensor plus a constant (a positional encoding).
Runs on the elementwise engine (ops/elementwise/engine.py).
"""

from __future__ import annotations

import math

import numpy as np

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.memory import STYLES, Memory, rom
from qonnx_spartan.ops.base import int_tensor, op_node
from qonnx_spartan.ops.elementwise.engine import Elementwise, fixed_point, signed_bits, term_dsps

#: Each term's rescale may move the sum by at most this fraction of an output LSB, over its operand's range.
TERM_ERROR_LSB = 1 / 256


def term_multipliers(ratios: tuple[float, float], types: tuple[IntType, IntType]) -> tuple[list[np.ndarray], int]:
    """(mult_a, mult_b), shift: the two scale ratios to the output as integers over one common shift.

    The shift is as large as MULTIPLIER_BITS-bit multipliers allow.  A term whose ratio is far below the
    other's then has few significant bits: an unquantised accumulator added to a quantised residual (ratio
    ~2**-10 against ~1) gets about 7, which over its 17-bit range move the sum by up to half an output LSB,
    where Brevitas adds the exact value.  When a term's rescale error exceeds TERM_ERROR_LSB over its
    range, the shift is the one of least error among those whose multipliers (up to 31 bits: a narrow
    operand leaves room on the DSP48E1's 25-bit port) take no more DSPs than the narrow ones.  Power-of-two
    ratios are exact, and sums of quantised tensors at comparable scales stay within the bound with the
    narrow multipliers, which are then kept."""

    def worst_error(ints, shift) -> float:
        return max(abs(r - float(m) / 2**shift) * max(-t.lo, t.hi) for r, m, t in zip(ratios, ints, types))

    def dsps(ints) -> int:
        return sum(term_dsps(signed_bits(t), np.array([int(m)])) for t, m in zip(types, ints))

    narrow, narrow_shift = fixed_point(*((r, 2**MULTIPLIER_BITS) for r in ratios))
    if worst_error(narrow, narrow_shift) <= TERM_ERROR_LSB:
        return narrow, narrow_shift
    top = 30 - max(math.frexp(r)[1] for r in ratios)  # multipliers are VHDL integers: below 2**31
    wider = [([round(r * 2.0**shift) for r in ratios], shift) for shift in range(top, narrow_shift, -1)]
    ints, shift = min(
        [(i, s) for i, s in wider if dsps(i) <= dsps(narrow)] + [(narrow, narrow_shift)],
        key=lambda c: worst_error(*c),
    )
    while shift > 0 and all(int(m) % 2 == 0 for m in ints):  # as fixed_point: common factors of two out
        ints, shift = [m // 2 for m in ints], shift - 1
    return [np.asarray(m, dtype=np.int64) for m in ints], shift


class IntAdd(Elementwise):
    """a = node input 0, b = node input 1 or, for a single-input node, the constant `const` (shaped like
    one batch item of the output, held in the ROM "c")."""

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "a_dtype": ("s", True, ""),
            "b_dtype": ("s", True, ""),
            "mult_a": ("i", True, 0),
            "mult_b": ("i", True, 0),
            "const": ("t", False, np.zeros(0, dtype=np.int64)),
            "c_mem_style": ("s", False, "distributed", set(STYLES)),
        }

    @staticmethod
    def make_node(
        name: str,
        inputs: list[str],
        out: str,
        a_type: IntType,
        a_scale: float,
        b_type: IntType,
        b_scale: float,
        out_type: IntType,
        out_scale: float,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
        const: np.ndarray | None = None,
    ):
        """The node computing round((a*a_scale + b*b_scale) / out_scale) clipped to [out_lo, out_hi];
        `const` (integers of b_type, shaped out_shape[1:]) replaces a second input."""
        if not (a_scale > 0 and b_scale > 0 and out_scale > 0):
            raise ValueError(f"{name}: scales must be positive, got {a_scale}, {b_scale}, {out_scale}")
        if len(inputs) != (1 if const is not None else 2):
            raise ValueError(f"{name}: IntAdd takes two inputs, or one input and a constant")
        (mult_a, mult_b), shift = term_multipliers((a_scale / out_scale, b_scale / out_scale), (a_type, b_type))
        attrs = {}
        if const is not None:
            values = np.asarray(const)
            ints = np.rint(values).astype(np.int64)
            if list(ints.shape) != list(out_shape[1:]) or not np.array_equal(ints, values):
                raise ValueError(f"{name}: the constant must be integers shaped {list(out_shape[1:])}")
            if ints.min() < b_type.lo or ints.max() > b_type.hi:
                raise ValueError(f"{name}: the constant does not fit {b_type.name}")
            attrs["const"] = int_tensor("const", ints)
        return op_node(
            "IntAdd",
            list(inputs),
            out,
            name,
            out_type,
            out_shape,
            a_dtype=a_type.name,
            b_dtype=b_type.name,
            mult_a=int(mult_a),
            mult_b=int(mult_b),
            shift=shift,
            out_lo=int(out_lo),
            out_hi=int(out_hi),
            **attrs,
        )

    # -- operands ------------------------------------------------------------------------------------
    def a_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("a_dtype"))

    def b_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("b_dtype"))

    def has_const(self) -> bool:
        return len(self.onnx_node.input) == 1

    def const(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("const"), dtype=np.int64)

    def terms(self) -> list[tuple[IntType, np.ndarray]]:
        return [
            (self.a_type(), np.array([self.get_nodeattr("mult_a")], dtype=np.int64)),
            (self.b_type(), np.array([self.get_nodeattr("mult_b")], dtype=np.int64)),
        ]

    def second_operand(self) -> str:
        return "rom" if self.has_const() else "z"

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        a = self.input_as_output(context, 0)
        b = self.const() if self.has_const() else self.input_as_output(context, 1)
        acc = a * self.get_nodeattr("mult_a") + b * self.get_nodeattr("mult_b")
        context[node.output[0]] = self.finish(acc).astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def weight_memories(self) -> dict[str, Memory]:
        if not self.has_const():
            return {}
        return {"c": rom(self.count, self.const().reshape(-1), self.b_type().bits, self.get_nodeattr("c_mem_style"))}

    def rom_words(self, role: str) -> list[int]:
        if role != "c" or not self.has_const():
            raise KeyError(role)
        return [int(v) for v in self.const().reshape(-1)]

    def template_context(self) -> dict:
        context = super().template_context()
        if self.has_const():
            context["c_abits"] = self.weight_memories()["c"].address_bits
        return context
