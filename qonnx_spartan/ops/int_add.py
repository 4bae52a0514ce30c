"""IntAdd: y = clip(round_half_even((a * mult_a + b * mult_b) / 2**shift), out_lo, out_hi) — a residual add
of two tensors with different scales, or a tensor plus a constant (a positional encoding).
Runs on the elementwise engine (ops/elementwise.py).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType
from qonnx_spartan.memory import STYLES, Memory, rom
from qonnx_spartan.ops.base import DOMAIN, int_tensor
from qonnx_spartan.ops.elementwise import Elementwise, fixed_point


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
        limit = 2**MULTIPLIER_BITS
        (mult_a, mult_b), shift = fixed_point((a_scale / out_scale, limit), (b_scale / out_scale, limit))
        attrs = {}
        if const is not None:
            values = np.asarray(const)
            ints = np.rint(values).astype(np.int64)
            if list(ints.shape) != list(out_shape[1:]) or not np.array_equal(ints, values):
                raise ValueError(f"{name}: the constant must be integers shaped {list(out_shape[1:])}")
            if ints.min() < b_type.lo or ints.max() > b_type.hi:
                raise ValueError(f"{name}: the constant does not fit {b_type.name}")
            attrs["const"] = int_tensor("const", ints)
        return helper.make_node(
            "IntAdd",
            list(inputs),
            [out],
            name=name,
            domain=DOMAIN,
            source=name,
            out_dtype=out_type.name,
            out_shape=[int(d) for d in out_shape],
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
