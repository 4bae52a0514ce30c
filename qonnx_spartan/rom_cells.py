"""A ROM in LUTs, built from XC7 cells (LUT6, MUXF7, MUXF8) instead of being left to synthesis.

Left to yosys, a ROM in logic costs what ABC's mapping finds: over the 358 ROMs of the calibration and
benchmark designs 22 % more LUTs than these cells need (fewer on 16 small ones, by 1-8 LUTs), and a count
no structural model follows (two 4,096 x 8 ROMs of random weights took 667 and 781 LUTs; their cells take
544).  Built from cells, each bit column is a tree over the address, after the slice of UG474 (7 Series
CLB guide, ch. 2): 64-word pieces in LUT6s, joined by MUXF7 (address bit 6) and MUXF8 (bit 7), then LUT6
4:1 multiplexers (bits 8-9), MUXF7 (10), MUXF8 (11), and so on.  Its LUTs are counted exactly, and they
are what the design gets.

A piece that is constant becomes a constant, one that depends on at most six address bits one LUT6 on them
(an address bit alone is that wire), and one that does not depend on its top address bit its lower half;
words past the depth are never read and repeat the words below them; a 2:1 multiplexer one of whose inputs
depends on few address bits takes that function into its own LUT6, and one with a constant input is a gate
on the other, merged with the gates around it.  Identical cells are built once
(yosys's opt_merge would merge them anyway), so a column that repeats another costs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

LUT_INPUTS = 6
#: An input of a cell: a node index, an address bit ("a", bit), or a constant ("c", 0 | 1).
Signal = tuple


@dataclass
class Cells:
    """The cells of a ROM: `nodes[i]` is (kind, parameter, inputs), kind LUT6 / MUXF7 / MUXF8; the
    parameter is a LUT's 64-bit INIT; inputs are Signals.  `columns[c]` is the Signal of bit column c."""

    nodes: list[tuple[str, int, tuple[Signal, ...]]] = field(default_factory=list)
    columns: list[Signal] = field(default_factory=list)
    index: dict = field(default_factory=dict)

    def add(self, kind: str, init: int, inputs: tuple[Signal, ...]) -> Signal:
        key = (kind, init, inputs)
        if key not in self.index:
            self.index[key] = ("n", len(self.nodes))
            self.nodes.append(key)
        return self.index[key]

    @property
    def luts(self) -> int:
        return sum(kind == "LUT6" for kind, _, _ in self.nodes)


def lut_init(function) -> int:
    """INIT of a LUT6 computing `function(i)` of its input word i = I5..I0."""
    return sum(1 << i for i in range(1 << LUT_INPUTS) if function(i))


MUX2_INIT = lut_init(lambda i: (i >> 1) & 1 if (i >> 2) & 1 else i & 1)  # O = I2 ? I1 : I0
MUX4_INIT = lut_init(lambda i: (i >> ((i >> 4) & 3)) & 1)  # O = I(I5 I4)

#: A piece of a column before it becomes cells: ("c", value) a constant; ("a", bit) an address bit;
#: ("f", bits, init) a function of at most six address bits, a LUT6 on them (its input k is address bit bits[k]);
#: ("m2", select, low, high) and ("m4", select, quarters) multiplexers by the address bits up to `select`;
#: ("g", core, selects, table) a gate (see `gate`).
Piece = tuple


def table_init(table: np.ndarray) -> int:
    """INIT of a LUT6 whose first inputs index `table` (the unused inputs are tied to 0)."""
    tiled = np.resize(table, 1 << LUT_INPUTS)
    return int.from_bytes(np.packbits(tiled[::-1].astype(np.uint8)).tobytes(), "big")


def fill(bits: np.ndarray, valid: int) -> np.ndarray:
    """The column padded to a power of two: a half that is never read repeats the other, so that the
    address bit between them does not matter."""
    if valid >= len(bits):
        return bits
    half = len(bits) // 2
    if valid <= half:
        low = fill(bits[:half], valid)
        return np.concatenate([low, low])
    return np.concatenate([bits[:half], fill(bits[half:], valid - half)])


def dependence(bits: np.ndarray, bit: int) -> np.ndarray:
    """Per piece (a row of `bits`): whether it depends on address bit `bit`."""
    pairs = bits.reshape(len(bits), -1, 2, 1 << bit)
    return (pairs[:, :, 0] != pairs[:, :, 1]).any(axis=(1, 2))


def slice_support(bits: np.ndarray) -> np.ndarray:
    """[slice, bit]: whether each 64-word slice of a column depends on address bit 0..5 (computed at once
    for the column: the tree asks for unions of them)."""
    slices = bits.reshape(-1, min(len(bits), 1 << LUT_INPUTS))
    level = slices.shape[1].bit_length() - 1
    return np.stack([dependence(slices, b) for b in range(level)], axis=1)


def support(bits: np.ndarray, level: int, slices: np.ndarray) -> list[int]:
    """The address bits a piece of 2**level words depends on, the top one first; past six of them, the
    first seven (it is then no single LUT).  `slices`: the piece's rows of `slice_support`."""
    if level <= LUT_INPUTS:
        return [b for b in reversed(range(level)) if dependence(bits[None], b)[0]]
    depends = slices.any(axis=0).tolist()
    low = [b for b in reversed(range(LUT_INPUTS)) if depends[b]]
    top = level - 1
    if len(low) == LUT_INPUTS and dependence(bits[None], top)[0]:
        return [top, *low]  # the common case, decided in two reductions
    upper = [b for b in reversed(range(LUT_INPUTS, level)) if dependence(bits[None], b)[0]]
    return upper[: LUT_INPUTS + 1] + low


def piece(bits: np.ndarray, level: int, slices: np.ndarray) -> Piece:
    """A column's 2**level words (address bit 0 first) as a Piece; `slices` as for `support`."""
    if level == LUT_INPUTS:  # one 64-word slice: its row of slice_support is its support
        depends = slices[0].tolist()
        if all(depends):  # the common slice, on all six bits: one LUT6
            return ("f", tuple(range(LUT_INPUTS)), int.from_bytes(np.packbits(bits[::-1]).tobytes(), "big"))
        if not any(depends):
            return ("c", int(bits[0]))
        inputs = [b for b in reversed(range(LUT_INPUTS)) if depends[b]]
    elif not bits.any() or bits.all():
        return ("c", int(bits[0]))
    else:
        inputs = support(bits, level, slices)
    if len(inputs) <= LUT_INPUTS:
        inputs = inputs[::-1]
        j = np.arange(1 << len(inputs))
        table = bits[sum(((j >> k) & 1) << b for k, b in enumerate(inputs))] if inputs != list(range(level)) else bits
        if len(inputs) == 1 and not table[0]:
            return ("a", inputs[0])
        return ("f", tuple(inputs), table_init(table))
    select = level - 1
    half = len(bits) // 2
    if inputs[0] != select:
        return piece(bits[:half], level - 1, slices[: len(slices) // 2])
    if (select - LUT_INPUTS) % 4 == 3:  # a LUT6 as 4:1 multiplexer of the quarters, bits select-1, select
        q, n = len(bits) // 4, len(slices) // 4
        return (
            "m4",
            select,
            tuple(piece(bits[i * q : (i + 1) * q], level - 2, slices[i * n : (i + 1) * n]) for i in range(4)),
        )
    n = len(slices) // 2
    low, high = piece(bits[:half], level - 1, slices[:n]), piece(bits[half:], level - 1, slices[n:])
    if "c" in (low[0], high[0]):
        return gate(select, low, high)
    return ("m2", select, low, high)


def gate(select: int, low: Piece, high: Piece) -> Piece:
    """A 2:1 multiplexer with a constant input is a gate on the other: ("g", core, selects, table), one
    LUT6 on the core's output and the select bits (table[i]: bit 0 of i is the core, bit k + 1 select k).
    Gates in a row (a threshold column of a smooth table: 0 below an address, 1 above) merge into one LUT6
    while it has inputs left."""
    constant, other, other_is_high = (low[1], high, True) if low[0] == "c" else (high[1], low, False)
    core, selects, table = (other[1], other[2], other[3]) if other[0] == "g" else (other, (), (0, 1))
    if len(selects) + 2 > LUT_INPUTS:
        core, selects, table = other, (), (0, 1)
    inner = 1 << (len(selects) + 1)
    merged = tuple(table[i % inner] if (i >= inner) == other_is_high else constant for i in range(2 * inner))
    return ("g", core, (*selects, select), merged)


def becomes(p: Piece) -> str | None:
    """The cell a Piece is built as: a MUXF7 joins two LUT6 outputs by address bit 6 (10, 14, ...), a
    MUXF8 two MUXF7 outputs by bit 7 (11, ...), as the slice wires them; any other multiplexer is a LUT6."""
    if p[0] in "fg":
        return "LUT6"
    if p[0] != "m2":
        return p[0] if p[0] in "ac" else "LUT6"
    position = (p[1] - LUT_INPUTS) % 4
    feeders = {0: "LUT6", 1: "MUXF7"}.get(position)
    if feeders and becomes(p[2]) == feeders and becomes(p[3]) == feeders:
        return "MUXF7" if position == 0 else "MUXF8"
    return "LUT6"


def emit(cells: Cells, p: Piece) -> Signal:
    """Add the cells of a Piece; its output Signal."""
    kind = p[0]
    if kind in "ac":
        return p
    if kind == "f":
        _, inputs, init = p
        return cells.add("LUT6", init, tuple(("a", b) for b in inputs) + (("c", 0),) * (LUT_INPUTS - len(inputs)))
    if kind == "g":
        _, core, selects, table = p
        pins = (emit(cells, core), *(("a", b) for b in selects))
        init = lut_init(lambda i: table[i & ((1 << len(pins)) - 1)])
        return cells.add("LUT6", init, pins + (("c", 0),) * (LUT_INPUTS - len(pins)))
    if kind == "m4":
        _, select, quarters = p
        parts = tuple(emit(cells, q) for q in quarters)
        return cells.add("LUT6", MUX4_INIT, (*parts, ("a", select - 1), ("a", select)))
    _, select, low, high = p
    cell = becomes(p)
    if cell != "LUT6":
        return cells.add(cell, 0, (emit(cells, low), emit(cells, high), ("a", select)))
    for small, other, small_is_high in ((high, low, True), (low, high, False)):
        if small[0] == "f" and len(set(small[1]) | {select}) + 1 <= LUT_INPUTS and select not in small[1]:
            return folded(cells, select, small, emit(cells, other), small_is_high)
    return cells.add("LUT6", MUX2_INIT, (emit(cells, low), emit(cells, high), ("a", select), *(("c", 0),) * 3))


def folded(cells: Cells, select: int, small: Piece, other: Signal, small_is_high: bool) -> Signal:
    """One LUT6 for a 2:1 multiplexer one of whose inputs is a function of few address bits: I0 the
    other input, I1 the select bit, I2.. the function's bits."""
    _, inputs, init = small

    def function(i: int) -> int:
        chosen = ((i >> 1) & 1) == small_is_high
        return (init >> (i >> 2)) & 1 if chosen else i & 1

    pins = (other, ("a", select), *(("a", b) for b in inputs))
    return cells.add("LUT6", lut_init(function), pins + (("c", 0),) * (LUT_INPUTS - len(pins)))


def address_levels(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def rom_cells(words: np.ndarray) -> Cells:
    """The cells of a ROM whose word w is the bit row words[w] (bit column 0 first)."""
    depth, width = words.shape
    levels = address_levels(depth)
    padded = np.zeros((1 << levels, width), dtype=bool)
    padded[:depth] = words
    cells = Cells()
    columns = [fill(padded[:, c], depth) for c in range(width)]
    cells.columns = [emit(cells, piece(bits, levels, slice_support(bits))) for bits in columns]
    return cells


@lru_cache(maxsize=256)
def cell_luts(data: bytes, shape: tuple[int, int]) -> int:
    """LUTs of the cells of a ROM given as packed bit rows (cached: the searches estimate the same weights
    many times)."""
    return rom_cells(np.frombuffer(data, dtype=bool).reshape(shape)).luts


def bit_rows(fields: np.ndarray, bits: int) -> np.ndarray:
    """The words of a table whose row w holds fields[w, 0], fields[w, 1], ... of `bits` bits each (two's
    complement), as bit rows, LSB first."""
    fields = np.ascontiguousarray(fields, dtype=np.int64).reshape(fields.shape[0], -1)
    return ((fields[:, :, None] >> np.arange(bits)) & 1).reshape(fields.shape[0], -1).astype(bool)


def table_luts(fields: np.ndarray, bits: int) -> int:
    """LUT6s of a constant table selected by its row number, as cells would build it: what the logic that
    selects its words grows with when synthesis maps it (a MAC's bias table, a per-channel gain table).
    Up to 64 rows a column is one piece: a LUT6 unless it is constant or an address bit, and equal columns
    share it, which is counted directly (the estimate asks for every layer's table)."""
    rows = bit_rows(fields, bits)
    depth = rows.shape[0]
    if depth == 1:
        return 0
    if depth > 1 << LUT_INPUTS:
        return cell_luts(rows.tobytes(), rows.shape)
    levels = address_levels(depth)
    padded = np.zeros((1 << levels, rows.shape[1]), dtype=bool)
    padded[:depth] = rows
    columns = fill(padded, depth).T
    wires = (np.arange(1 << levels)[None] >> np.arange(levels)[:, None]) & 1
    free = {c.tobytes() for c in columns[columns.any(axis=1) & ~columns.all(axis=1)]}
    return len(free - {w.astype(bool).tobytes() for w in wires})
