"""Memories of a design (inter-layer buffers and weight ROMs): geometry, style and resource cost.

BRAM18 counts follow the RAMB18E1 simple-dual-port aspect ratios of UG473 (16K x 1 ... 512 x 36); LUTRAM
counts follow the SLICEM primitives yosys maps distributed memories to (RAM32M: 32 x 6, RAM64M: 64 x 3,
each four LUTs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STYLES = ("block", "distributed")
#: The graph input's buffer has no producing op to carry its style: it is kept in the model's metadata.
INPUT_STYLE_KEY = "qonnx_spartan.input_mem_style"

# (depth, width) of one RAMB18E1 in simple dual port mode (UG473, table 1-6 and 1-7).
RAMB18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def address_bits(depth: int) -> int:
    return max(1, math.ceil(math.log2(depth))) if depth > 1 else 1


@dataclass(frozen=True)
class Memory:
    """One RAM or ROM: `depth` words of `width` bits, placed in block RAM or in LUTs (distributed)."""

    depth: int
    width: int
    style: str
    read_only: bool = False  # a ROM: "distributed" means LUT logic, not LUTRAM (no write port)

    @property
    def address_bits(self) -> int:
        return address_bits(self.depth)

    @property
    def bram18(self) -> int:
        if self.style != "block":
            return 0
        return min(math.ceil(self.depth / d) * math.ceil(self.width / w) for d, w in RAMB18_SHAPES)

    @property
    def lutram(self) -> int:
        """LUTs used as memory for a distributed memory with one write and one read port."""
        if self.style != "distributed" or self.read_only:
            return 0
        if self.depth <= 32:
            return 4 * math.ceil(self.width / 6)
        return 4 * math.ceil(self.depth / 64) * math.ceil(self.width / 3)

    @property
    def read_mux_luts(self) -> int:
        """Logic LUTs that select among the 64-deep slices of a deep distributed memory."""
        if self.style != "distributed" or self.read_only or self.depth <= 64:
            return 0
        return self.width * math.ceil((math.ceil(self.depth / 64) - 1) / 3)

    @property
    def rom_luts(self) -> int:
        """LUT6s of a distributed ROM: each holds 64 words of one bit, plus the muxes between them."""
        if self.style != "distributed" or not self.read_only:
            return 0
        return self.width * (math.ceil(self.depth / 64) + math.ceil((math.ceil(self.depth / 64) - 1) / 3))

    def resources(self) -> dict[str, int]:
        lutram = self.lutram
        return {
            "LUT": lutram + self.read_mux_luts + self.rom_luts,
            "LUTRAM": lutram,
            "FF": self.width,  # the registered read port
            "BRAM18": self.bram18,
            "DSP": 0,
        }


def input_buffer_style(model) -> str:
    return model.get_metadata_prop(INPUT_STYLE_KEY) or "distributed"
