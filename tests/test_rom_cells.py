"""ROMs in LUTs built from XC7 cells (qonnx_spartan/rom_cells.py): the cells hold the words, in the slice's
structure, and cost the LUTs counted.  tests/test_synth.py checks the count against yosys; every GHDL test
with distributed weights checks the cells bit for bit in simulation."""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_spartan.memory import rom
from qonnx_spartan.rom_cells import rom_cells


def read(cells, address: int) -> list[int]:
    """The word the cells give at `address`, evaluated as UG953 defines LUT6, MUXF7 and MUXF8."""
    values: dict[int, int] = {}

    def value(signal) -> int:
        kind, x = signal
        if kind == "c":
            return x
        if kind == "a":
            return (address >> x) & 1
        if x not in values:
            cell, init, inputs = cells.nodes[x]
            bits = [value(s) for s in inputs]
            if cell == "LUT6":
                values[x] = (init >> sum(b << i for i, b in enumerate(bits))) & 1
            else:
                values[x] = bits[1] if bits[2] else bits[0]
        return values[x]

    return [value(s) for s in cells.columns]


@pytest.mark.parametrize("depth,width", [(1, 3), (5, 4), (64, 6), (100, 5), (144, 9), (600, 4), (1500, 3), (5000, 2)])
def test_the_cells_hold_every_word(depth, width):
    rng = np.random.default_rng(depth)
    words = rng.random((depth, width)) < rng.random(width)  # columns from sparse to dense
    words[:, -1] = words[:, 0]  # a repeated column
    if width > 2:
        words[:, 1] = False  # a constant one
    cells = rom_cells(words)
    for address in range(depth):
        assert read(cells, address) == words[address].astype(int).tolist(), address


def test_the_cells_follow_the_slice():
    """A MUXF7 joins two LUT6 outputs and a MUXF8 two MUXF7 outputs, as the 7 Series slice wires them."""
    cells = rom_cells(np.random.default_rng(1).random((5000, 3)) < 0.5)
    kinds = {("n", i): kind for i, (kind, _, _) in enumerate(cells.nodes)}
    feeds = {"MUXF7": "LUT6", "MUXF8": "MUXF7"}
    muxes = [(kind, inputs) for kind, _, inputs in cells.nodes if kind in feeds]
    assert muxes
    for kind, inputs in muxes:
        assert [kinds.get(s) for s in inputs[:2]] == [feeds[kind]] * 2
        assert inputs[2][0] == "a"


def test_the_lut_count_follows_the_tree():
    """Random columns of 4,096 words: 64 LUT6 slices, four 4:1 multiplexers (bits 8-9) - 68 a column;
    a column that repeats another and a constant one cost nothing; a 64-word column one LUT6, an address
    bit none; a threshold over 256 words two."""
    rng = np.random.default_rng(0)
    words = rng.random((4096, 5)) < 0.5
    words[:, 3] = words[:, 0]
    words[:, 4] = True
    assert rom_cells(words).luts == 3 * 68
    small = rng.random((64, 3)) < 0.5
    small[:, 2] = (np.arange(64) >> 4) & 1  # address bit 4
    assert rom_cells(small).luts == 2
    threshold = (np.arange(256) >= 150)[:, None]  # a smooth table's top bit: the slice of 150, then a gate
    assert rom_cells(threshold).luts == 2


def test_the_estimator_counts_the_cells_of_the_rom_it_describes():
    fields = np.random.default_rng(3).integers(-8, 8, (300, 2))
    memory = rom(300, fields, 4, "distributed")
    bits = ((fields[:, :, None] >> np.arange(4)) & 1).reshape(300, -1).astype(bool)
    assert memory.cell_luts == rom_cells(bits).luts > 0
    assert memory.exact_resources()["LUT"] == memory.cell_luts
    assert rom(300, fields, 4, "block").exact_resources()["LUT"] == 0


def test_a_small_table_is_counted_as_its_cells():
    """table_luts counts tables of up to 64 rows directly (constant and address-bit columns are free, equal
    columns share a LUT6); the count is the cells' count on tables of every kind: random, small multiples
    of a step (few distinct columns), and ramps (columns that are address bits)."""
    from qonnx_spartan.rom_cells import bit_rows, table_luts

    rng = np.random.default_rng(0)
    for _ in range(400):
        rows, fields, bits = int(rng.integers(2, 65)), int(rng.integers(1, 4)), int(rng.integers(2, 12))
        values = [
            rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (rows, fields)),
            rng.integers(-3, 4, (rows, fields)) * int(rng.integers(1, 9)),
            np.arange(rows)[:, None] * np.ones((1, fields), dtype=np.int64) * int(rng.choice([1, 2, 3, -1])),
        ][int(rng.integers(0, 3))]
        assert table_luts(values, bits) == rom_cells(bit_rows(values, bits)).luts
    ramp = np.arange(16)[:, None]
    assert table_luts(ramp, 6) == 0  # bits 0-3 are the address, 4-5 constant
    assert table_luts(np.concatenate([ramp ^ 5, ramp ^ 5], axis=1), 6) == 2  # two inverted bits, repeated
