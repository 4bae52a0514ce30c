"""IntTable: y = table[x], a unary function between two quantisers as a ROM indexed by the input integer.

The table has one word per bit pattern of the input (2**bits words, in the order of the pattern read as
an unsigned number, so that the buffer's word is the ROM's address with no logic between them); each word
is the output quantiser applied to the function of the input's real value, computed when the node is made
(lower.py).  Exact by construction: the hardware reads the integers the reference reads.

Hardware: one element per cycle: the buffer's read (1), the ROM's registered read (2), written as it comes.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import IntType
from qonnx_spartan.memory import STYLES, Memory, rom
from qonnx_spartan.ops.base import SpartanOp, Trace, counter_bits, int_tensor, op_node, streamed

#: Cycles from the last element's issue to the done pulse: buffer read, ROM read, done after the last write.
PIPELINE_DEPTH = 3


def bit_patterns(dtype: IntType) -> np.ndarray:
    """The integer each address of a table over `dtype` stands for (two's complement for a signed type)."""
    address = np.arange(1 << dtype.bits, dtype=np.int64)
    return address - ((address >> (dtype.bits - 1)) << dtype.bits) if dtype.signed else address


class IntTable(SpartanOp):
    template = "table.vhd.j2"
    resource_group = "table"

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            # the output integer for each input bit pattern, 2**bits words
            "table": ("t", True, np.zeros(1, dtype=np.int64)),
            "table_mem_style": ("s", False, "distributed", set(STYLES)),
        }

    @staticmethod
    def make_node(name: str, inp: str, out: str, in_type: IntType, out_type: IntType, words, out_shape: list[int]):
        """The node reading `words` (indexed by the input's bit pattern, see `bit_patterns`), each within
        out_type."""
        words = np.asarray(words)
        ints = np.rint(words).astype(np.int64) if np.all(np.isfinite(words)) else None
        if ints is None or ints.shape != (1 << in_type.bits,) or not np.array_equal(ints, words):
            raise ValueError(f"{name}: a table over {in_type.name} holds {1 << in_type.bits} integers")
        if ints.min() < out_type.lo or ints.max() > out_type.hi:
            raise ValueError(f"{name}: the table's values do not fit {out_type.name}")
        return op_node(
            "IntTable",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            table=int_tensor("table", ints),
        )

    def table(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("table"), dtype=np.int64)

    @property
    def count(self) -> int:
        return int(np.prod(self.get_nodeattr("out_shape"), dtype=np.int64))

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        x = self.input_as_output(context)
        address = x & ((1 << self.in_type().bits) - 1)  # the bit pattern, as the buffer's word holds it
        context[self.onnx_node.output[0]] = self.table()[address].astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def weight_memories(self) -> dict[str, Memory]:
        table = self.table()
        return {"table": rom(len(table), table, self.out_type().bits, self.get_nodeattr("table_mem_style"))}

    def rom_words(self, role: str) -> list[int]:
        if role != "table":
            raise KeyError(role)
        return [int(v) for v in self.table()]

    def cycles(self) -> int:
        return self.count + PIPELINE_DEPTH

    def read_trace(self, port: str) -> Trace:
        return streamed(self.count, PIPELINE_DEPTH - 1)[0]

    def write_trace(self) -> Trace:
        return streamed(self.count, PIPELINE_DEPTH - 1)[1]

    def dsps(self) -> int:
        return 0

    def resource_features(self) -> dict[str, float]:
        """The issue and write counters, and whether they wrap by a comparison (a count that is not a power
        of two; the single-op designs take 16-20 LUTs then, 7-9 without, whatever the width); the ROM is the
        memory's."""
        wraps_by_compare = self.count & (self.count - 1) > 0
        return {"one": 1, "counter_bits": 2 * counter_bits(self.count), "wrap_compare": float(wraps_by_compare)}

    def template_context(self) -> dict:
        return {"count": self.count, "x_bits": self.in_type().bits, "out_bits": self.out_type().bits}
