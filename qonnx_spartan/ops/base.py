"""What every integer op of the qonnx_spartan.ops domain owns, side by side.

An op is a qonnx CustomOp: `execute_node` is its integer reference (numpy, exact), the specification its
hardware matches bit for bit.  Next to it the op states its resource model, its cycle count and the values
its VHDL template needs, so that adding an op means adding one module and one template.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
from onnx import TensorProto, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from qonnx_spartan.intarith import IntType
from qonnx_spartan.memory import STYLES, Memory

#: The ONNX domain of the integer ops; qonnx imports this package to find them.
DOMAIN = "qonnx_spartan.ops"
RESOURCES = ("LUT", "LUTRAM", "FF", "BRAM18", "DSP")


def int_tensor(name: str, values) -> TensorProto:
    """An integer tensor attribute (weights, tables) of an op node."""
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def multiplier_dsps(a_bits: int, b_bits: int) -> int:
    """DSP48E1s of a signed a x b product as yosys `synth_xilinx -family xc7` maps it: none when an operand
    is under 2 bits or the product under 9 bits wide (DSP_Y_MINWIDTH=9: UG901 calls 4x4 and smaller
    multiplies small), one for up to 25 x 18 bits, else 18-bit partial products (techlibs/xilinx mul2dsp).
    Unsigned operands count one bit more: the DSP48E1 multiplies signed numbers only."""
    wide, narrow = max(a_bits, b_bits), min(a_bits, b_bits)
    if narrow < 2 or wide + narrow < 9:
        return 0
    if wide <= 25 and narrow <= 18:
        return 1
    return math.ceil(wide / 18) * math.ceil(narrow / 18)


def multiplier_luts(a_bits: int, b_bits: int) -> int:
    """LUTs of a product yosys keeps in logic (no DSP): about one per partial-product bit."""
    return 0 if multiplier_dsps(a_bits, b_bits) else a_bits * b_bits


def add_resources(*parts: dict[str, int]) -> dict[str, int]:
    return {r: sum(int(p.get(r, 0)) for p in parts) for r in RESOURCES}


class SpartanOp(CustomOp):
    """Base of the integer ops: output type, output buffer style, and the name of the source node."""

    #: File name of the op's Jinja2 template in qonnx_spartan/templates.
    template: str = ""

    def get_nodeattr_types(self):
        return {
            # storage type of the output tensor (INTb / UINTb)
            "out_dtype": ("s", True, ""),
            # where the output buffer lives
            "out_mem_style": ("s", False, "distributed", set(STYLES)),
            # shape of the output tensor, batch dimension first
            "out_shape": ("ints", True, []),
            # name of the exported node this op was lowered from (survives renaming)
            "source": ("s", False, ""),
            # set by EstimateResources: resources (JSON) with the output buffer, and cycles
            "res_estimate": ("s", False, ""),
            "cycles_estimate": ("i", False, 0),
        }

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op(self.get_nodeattr("out_shape"))

    # -- types ---------------------------------------------------------------------------------------
    def out_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("out_dtype"))

    def in_type(self) -> IntType:
        """Type of the (first) input, for ops that declare `in_dtype`."""
        return IntType.from_name(self.get_nodeattr("in_dtype"))

    def output_context(self) -> dict:
        """Template values of the output word: its saturation bounds, width and signedness."""
        out = self.out_type()
        return {
            "out_lo": self.get_nodeattr("out_lo"),
            "out_hi": self.get_nodeattr("out_hi"),
            "out_bits": out.bits,
            "out_signed": out.signed,
        }

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType[self.get_nodeattr("out_dtype")])

    def verify_node(self):
        return []

    # -- the integer reference -----------------------------------------------------------------------
    @abstractmethod
    def execute_node(self, context, graph): ...

    @staticmethod
    def as_int(a) -> np.ndarray:
        """Integer view of a tensor held in a float container, refusing values that are not integers."""
        a = np.asarray(a)
        ints = np.rint(a).astype(np.int64)
        if not np.array_equal(ints, a):
            raise ValueError("integer op received a non-integer tensor")
        return ints

    # -- hardware ------------------------------------------------------------------------------------
    def output_buffer(self) -> Memory:
        """The buffer the op writes (the design instantiates it; its style is the op's out_mem_style)."""
        count = int(np.prod(self.get_nodeattr("out_shape"), dtype=np.int64))
        return Memory(count, self.out_type().bits, self.get_nodeattr("out_mem_style"))

    def weight_memories(self) -> dict[str, Memory]:
        """Read-only memories the op owns, by role; a role's style is the attribute `<role>_mem_style`."""
        return {}

    def set_memory_style(self, role: str, style: str) -> None:
        """Place the memory `role` ("out" for the output buffer, or a weight memory's role)."""
        self.set_nodeattr(f"{role}_mem_style", style)

    def rom_words(self, role: str) -> list[int]:
        """Contents of the weight memory `role`, one integer per word."""
        raise KeyError(role)

    @abstractmethod
    def logic_resources(self) -> dict[str, int]:
        """LUT, FF and DSP of the op's datapath and control, memories excluded."""

    def resources(self) -> dict[str, int]:
        """The op's own cost: logic plus weight memories (its output buffer is counted by the design)."""
        return add_resources(self.logic_resources(), *(m.resources() for m in self.weight_memories().values()))

    @abstractmethod
    def cycles(self) -> int:
        """Clock cycles from the start pulse to the done pulse, exactly as the hardware takes them."""

    @abstractmethod
    def template_context(self) -> dict:
        """Values the op's template needs, besides the names the backend gives it."""
