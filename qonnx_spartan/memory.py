"""Memories of a design (inter-layer buffers and weight ROMs): geometry, style and resource cost.

A memory in block RAM takes the geometry yosys's memory_libmap chooses for it (RAMB18E1 and RAMB36E1 in
the aspect ratios of UG473); LUTRAM counts follow the SLICEM primitives yosys maps distributed memories to
(RAM32M: 32 x 6, RAM64M: 64 x 3, each four LUTs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from qonnx_spartan.rom_cells import bit_rows, cell_luts

STYLES = ("block", "distributed")
#: The graph input's buffer has no producing op to carry its style: it is kept in the model's metadata.
INPUT_STYLE_KEY = "qonnx_spartan.input_mem_style"

#: A RAM's blocks share a block RAM's word only in whole bytes (its write enables are per 9-bit byte).
BYTE_BITS = 9
#: The block RAM kinds yosys maps a memory to, as its xilinx library declares them (brams_xc4v.txt, 7 series):
#: (cost, address bits at width 1, port widths, RAMB18s): true dual port RAMB18 and RAMB36, simple dual
#: port RAMB18 and RAMB36, in the library's order.
ROM_KINDS = (
    (129, 14, (1, 2, 4, 9, 18), 1),
    (257, 15, (1, 2, 4, 9, 18, 36), 2),
    (129, 14, (1, 2, 4, 9, 18, 36), 1),
    (257, 15, (1, 2, 4, 9, 18, 36, 72), 2),
)


@lru_cache(maxsize=1)
def _measured_buffers() -> dict[tuple[int, int], tuple[int, int]]:
    document = json.loads((files("qonnx_spartan") / "data" / "lutram_periphery.json").read_text())
    return {tuple(map(int, shape.split("x"))): tuple(counts) for shape, counts in document["buffers"].items()}


def measured_buffer(depth: int, width: int) -> tuple[int, int] | None:
    """(LUTRAM, logic LUTs) of a distributed buffer as calibration/lutram_periphery.py measured its shape
    (depth to 32 words: the primitives come in rows of 32 or 64), or None outside the table."""
    table = _measured_buffers()
    return table.get((32 * max(1, math.ceil(depth / 32)), width))


def lutram_periphery_luts(depth: int, width: int) -> float:
    """Logic LUTs of a distributed buffer's read multiplexer and write decoder: measured (see
    `measured_buffer`); widths between the table's are interpolated, and beyond them, or beyond its
    depth, scaled."""
    measured = measured_buffer(depth, width)
    if measured is not None:
        return measured[1]
    table = _measured_buffers()
    depths = sorted({d for d, _ in table})
    widths = sorted({w for _, w in table})
    rows = min(depths, key=lambda d: (d < depth, d)) if depth <= depths[-1] else depths[-1]
    scale = max(1.0, depth / depths[-1])
    if width in widths:
        return scale * table[rows, width][1]
    lower = max((w for w in widths if w < width), default=widths[0])
    upper = min((w for w in widths if w > width), default=None)
    if upper is None:  # wider than the table: per bit as between its two widest
        lower, upper = widths[-2], widths[-1]
    slope = (table[rows, upper][1] - table[rows, lower][1]) / (upper - lower)
    return scale * (table[rows, lower][1] + slope * (width - lower))


def address_bits(depth: int) -> int:
    return max(1, math.ceil(math.log2(depth))) if depth > 1 else 1


@dataclass(frozen=True)
class Memory:
    """One RAM or ROM: `depth` words of `width` bits, placed in block RAM or in LUTs (distributed)."""

    depth: int
    width: int
    style: str
    read_only: bool = False  # a ROM: "distributed" means LUT logic, not LUTRAM (no write port)
    #: A ROM's bit columns that are not constant over its words: synthesis keeps only those.
    varying_width: int | None = None
    #: In LUTs, a ROM is built from XC7 cells (rom_cells.py): their LUT6 count.
    cell_luts: int | None = None
    #: A small table of constants (per-channel parameters), not data: it stays in LUTs unless the budget
    #: or a plan places it (transforms/memory_style.py)
    table: bool = False

    @property
    def address_bits(self) -> int:
        return address_bits(self.depth)

    @property
    def stored_width(self) -> int:
        """Bits per word that synthesis stores (a ROM's constant columns become wiring)."""
        return self.varying_width if self.read_only and self.varying_width is not None else self.width

    @property
    def bram18(self) -> int:
        """RAMB18s (a RAMB36 counts two), as yosys places the memory (`block_geometry`)."""
        if self.style != "block" or self.stored_width == 0:
            return 0
        return self.block_geometry()[0]

    def block_geometry(self) -> tuple[int, int]:
        """(RAMB18s, address blocks) of the memory in block RAM, chosen as yosys's memory_libmap chooses it
        (passes/memory/memory_libmap.cc `handle_geom`, techlibs/xilinx/brams_xc4v.txt).  For each block RAM
        kind and base width it cuts the address range into blocks of the base depth, lays the blocks side by
        side in the data bits, and takes as many RAMs as those bits need; the cost is the RAMs' (129 a
        RAMB18, 257 a RAMB36) plus half a unit per bit of the multiplexer between blocks, and the cheapest
        wins (the first, on a tie).  So a 1,100 x 12 ROM is three 512-word blocks of 12 bits in one 36-bit
        RAMB18 behind a 3:1 multiplexer, while a 1,100 x 14 one takes a RAMB36.  A RAM's blocks share a word
        in whole bytes (`BYTE_BITS`) and not at all below a 9-bit port: a 768 x 22 buffer is one RAMB36 (1K
        x 36, no multiplexer), a 1,536 x 40 one two 512 x 72 RAMB36s behind a 3:1 multiplexer, a 1,100 x 19
        one three 2K x 9 RAMB18s (calibration/block_packing.py measures these against yosys)."""
        best = None
        width = self.stored_width
        for cost, address_bits, widths, bram18 in ROM_KINDS:
            for level, port in enumerate(widths):
                blocks = math.ceil(self.depth / (1 << (address_bits - level)))
                if self.read_only or blocks == 1:
                    rams = math.ceil(blocks * width / port)
                elif port < BYTE_BITS:
                    rams = blocks * math.ceil(width / port)
                else:
                    rams = math.ceil(blocks * math.ceil(width / BYTE_BITS) * BYTE_BITS / port)
                total = cost * rams + 0.5 * (blocks - 1) * width
                if best is None or total < best[0]:
                    best = (total, rams * bram18, blocks)
        return best[1], best[2]

    @property
    def lutram(self) -> int:
        """LUTs used as memory by a distributed RAM with one write and one read port, as measured for its
        shape (`measured_buffer`).  Outside the table: yosys (memory_libmap, techlibs/xilinx/lutrams_xc5v.txt)
        builds it from RAM32M (32 x 6) or RAM64M (64 x 3), four LUTs each, whichever costs less: 8 per
        primitive plus 3/4 of a unit per bit of the read multiplexer between rows of primitives (fitted to
        its choices: 96 x 5 and 144 x 5 take RAM32M, 400 x 5 and 200 x 4 take RAM64M)."""
        if self.style != "distributed" or self.read_only:
            return 0
        measured = measured_buffer(self.depth, self.width)
        if measured is not None:
            return measured[0]
        options = []
        for depth, bits in ((32, 6), (64, 3)):
            rows = math.ceil(self.depth / depth)
            primitives = rows * math.ceil(self.width / bits)
            options.append((8 * primitives + 0.75 * (rows - 1) * self.width, 4 * primitives))
        return min(options)[1]

    def features(self) -> dict[str, float]:
        """Structural quantities the LUTs and FFs around the memory grow with (the estimator's coefficients
        weigh them, see qonnx_spartan/coefficients.py).  A ROM in LUTs is counted exactly (`exact_resources`):
        only its read register is fitted."""
        if self.style == "block":
            # block RAMs side by side in the data bits need no logic (their registers are inside); address
            # blocks are joined by a multiplexer
            return {"block_join_bits": (self.block_geometry()[1] - 1) * self.stored_width}
        if self.read_only:
            return {"rom_bits": self.stored_width}
        periphery = lutram_periphery_luts(self.depth, self.width)
        # a buffer deeper than one LUTRAM has a read multiplexer and write decoder: in a design they cost
        # about 4 LUTs more than measured alone (docs/estimator.md, "Buffers in LUTs")
        return {"ram_periphery_luts": periphery, "ram_bits": self.width, "ram_decoded": float(periphery > 0)}

    def exact_resources(self) -> dict[str, int]:
        """What is counted, not fitted: block RAMs, the LUTs used as RAM (which are LUTs too) and the LUTs
        of a ROM's cells."""
        rom_luts = (self.cell_luts or 0) if self.read_only and self.style == "distributed" else 0
        return {"LUT": self.lutram + rom_luts, "LUTRAM": self.lutram, "BRAM18": self.bram18}


def rom(depth: int, fields: np.ndarray, bits: int, style: str) -> Memory:
    """A ROM whose word w holds fields[w, 0], fields[w, 1], ... of `bits` bits each (two's complement),
    measured for synthesis: the bit columns that vary, and in LUTs the LUTs of its cells."""
    return rom_of_rows(bit_rows(np.asarray(fields).reshape(depth, -1), bits), style)


def rom_of_rows(rows: np.ndarray, style: str, table: bool = False) -> Memory:
    """A ROM given as its words' bits (rows, LSB first), measured for synthesis as `rom` measures it."""
    varying = int((rows.any(axis=0) & ~rows.all(axis=0)).sum())
    luts = cell_luts(rows.tobytes(), rows.shape) if style == "distributed" else None
    return Memory(rows.shape[0], rows.shape[1], style, read_only=True, varying_width=varying, cell_luts=luts, table=table)


def input_buffer_style(model) -> str:
    return model.get_metadata_prop(INPUT_STYLE_KEY) or "distributed"
