"""IntAdd: y = clip(round_half_even((a * mult_a * 2**shift_a + b * mult_b * 2**shift_b) / 2**shift), out_lo,
out_hi) — a residual add of two tensors with different scales, or a tensor plus a constant (a positional
encoding).
Runs on the elementwise engine (ops/elementwise/engine.py).
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.memory import STYLES, Memory, rom
from qonnx_spartan.ops.base import int_tensor, op_node
from qonnx_spartan.ops.elementwise.engine import MAX_SHIFT, Elementwise, fixed_point, signed_bits, term_dsps

#: Each term's rescale may move the sum by at most this fraction of an output LSB, over its operand's range.
TERM_ERROR_LSB = 1 / 4096
#: Multipliers stay below this: they are VHDL integer constants (templates/elementwise.vhd.j2).
MULTIPLIER_LIMIT = 2**30


def term_multipliers(
    ratios: tuple[float, float], types: tuple[IntType, IntType]
) -> tuple[list[np.ndarray], list[int], int]:
    """(mult_a, mult_b), (shift_a, shift_b), shift: the sum (a * mult_a * 2**shift_a + b * mult_b * 2**shift_b)
    / 2**shift stands for a * ratio_a + b * ratio_b in output LSBs.

    Both terms over one common shift with MULTIPLIER_BITS-bit multipliers (`fixed_point`, the product
    shifts 0) when that moves the sum by at most TERM_ERROR_LSB over each operand's range: power-of-two
    ratios are exact, and sums of quantised tensors at comparable scales stay within it.  A term whose
    ratio is far below the other's (an unquantised accumulator added to a quantised residual, ratio
    ~2**-10 against ~1) would keep only a few significant bits that way.  Each term then gets its own
    precision (`term_fixed_point`): the fewest bits that hold its ratio within half of TERM_ERROR_LSB over
    its range, or as many as its one product's DSPs take; its product is shifted left to the common shift
    (wiring, one adder bit more per shifted bit)."""

    def worst_error(ints, shift) -> float:
        return max(abs(r - float(m) / 2**shift) * max(-t.lo, t.hi) for r, m, t in zip(ratios, ints, types))

    narrow, narrow_shift = fixed_point(*((r, 2**MULTIPLIER_BITS) for r in ratios))
    if worst_error(narrow, narrow_shift) <= TERM_ERROR_LSB:
        return narrow, [0, 0], narrow_shift
    terms = [term_fixed_point(r, t) for r, t in zip(ratios, types)]
    shift = max(e for _, e in terms)
    shifts = [shift - e for _, e in terms]
    if sum(max(-t.lo, t.hi) * m << s for t, (m, _), s in zip(types, terms, shifts)) >= 2**62:
        raise ValueError(f"the scale ratios {ratios[0]:g} and {ratios[1]:g} are too far apart for a 64-bit sum")
    return [np.asarray(m, dtype=np.int64) for m, _ in terms], shifts, shift


def term_fixed_point(ratio: float, dtype: IntType) -> tuple[int, int]:
    """(m, e), m odd or 1: m / 2**e within TERM_ERROR_LSB / 2 of `ratio` over the operand's range with the
    fewest bits, or the closest whose product takes no more DSPs than a MULTIPLIER_BITS-bit multiplier's
    (yosys multiplies the operand by the odd m and shifts)."""
    operand, magnitude = signed_bits(dtype), max(-dtype.lo, dtype.hi)
    limit = term_dsps(operand, np.array([2**MULTIPLIER_BITS - 1]))
    best = None
    for e in range(MAX_SHIFT):
        m = round(ratio * 2**e)
        if m >= MULTIPLIER_LIMIT:
            break
        if m == 0 or m % 2 == 0:  # odd multipliers only: yosys maps an even one's product wider (term_dsps)
            continue
        if term_dsps(operand, np.array([m])) > limit:
            break
        best = (m, e)
        if abs(ratio - m / 2**e) * magnitude <= TERM_ERROR_LSB / 2:
            break
    if best is None:
        raise ValueError(f"a scale ratio ({ratio:g}) is too large for the integer datapath")
    return best


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
            # each product shifted left by this before the sum (term_multipliers)
            "shift_a": ("i", False, 0),
            "shift_b": ("i", False, 0),
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
        (mult_a, mult_b), shifts, shift = term_multipliers((a_scale / out_scale, b_scale / out_scale), (a_type, b_type))
        attrs = {f"shift_{t}": s for t, s in zip("ab", shifts) if s}
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

    def product_shifts(self) -> list[int]:
        return [self.get_nodeattr("shift_a"), self.get_nodeattr("shift_b")]

    def second_operand(self) -> str:
        return "rom" if self.has_const() else "z"

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        a = self.input_as_output(context, 0)
        b = self.const() if self.has_const() else self.input_as_output(context, 1)
        (_, mult_a), (_, mult_b) = self.terms()
        shift_a, shift_b = self.product_shifts()
        acc = ((a * int(mult_a[0])) << shift_a) + ((b * int(mult_b[0])) << shift_b)
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
