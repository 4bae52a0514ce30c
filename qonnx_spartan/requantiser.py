"""One rescale multiplier for the MAC layers that share it.

The sharing layers take it in turn (the schedule never makes two of them busy at once: schedule.py), so the
multiply of a float-scale requantisation (acc * M + round, one or two DSP48E1s per layer) need not be built
per layer: a layer with `shared_rescale` sends its rescale operand, 0 while it has none, to the top level,
where the operands of all sharing layers are OR-ed (only the running layer's is not 0), multiplied by the
running layer's M and given its rounding constant, both read from a table (selected by the layers' busy
flags, or by the sequencer's stage when the layers run in turn), and registered; the product comes back in
the same cycle the layer's own DSP would have given it (templates/top.vhd.j2, mac.vhd.j2), so the numbers
and the cycles do not change. The lanes step tries designs with and without it (transforms/lanes.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from qonnx_spartan.ops.base import multiplier_dsps
from qonnx_spartan.rom_cells import table_luts

LUT_INPUTS = 6


class Sharer(NamedTuple):
    """What the shared multiplier does for one layer."""

    operand_bits: int  # the accumulator's
    multiplier: int  # M
    multiplier_bits: int  # M as a signed number
    rounding: int  # the constant added to the product (the rounding half, an exact rescale's offset)
    product_bits: int  # the layer's rescaled sum


@dataclass(frozen=True)
class SharedRescale:
    """The sharing layers by stage index, and the widths of the one multiplier that serves them."""

    layers: dict[int, Sharer]
    stages: int

    @property
    def operand_bits(self) -> int:
        return max(v.operand_bits for v in self.layers.values())

    @property
    def multiplier_bits(self) -> int:
        return max(v.multiplier_bits for v in self.layers.values())

    @property
    def product_bits(self) -> int:
        return max(self.operand_bits + self.multiplier_bits, *(v.product_bits for v in self.layers.values()))

    def table(self) -> np.ndarray:
        """(stages, 2): M and the rounding constant by stage, 0 for the stages that do not share."""
        table = np.zeros((self.stages, 2), dtype=np.int64)
        for stage, layer in self.layers.items():
            table[stage] = (layer.multiplier, layer.rounding)
        return table

    def template_context(self, to_bits) -> dict:
        """The widths, and the table as `to_bits` writes constants (a constant may be wider than a VHDL
        integer)."""
        return {
            "operand_bits": self.operand_bits,
            "multiplier_bits": self.multiplier_bits,
            "product_bits": self.product_bits,
            "table": [
                [to_bits(int(m), self.multiplier_bits), to_bits(int(c), self.product_bits)] for m, c in self.table()
            ],
        }

    def resources(self) -> dict[str, int]:
        """Counted: the multiplier's DSP48E1s, the OR of the operands (per bit a tree of LUT6 over the
        layers: a narrower operand's sign bit stands for the bits above it; each layer gates its own, see
        MacOp.exact_resources), and the LUTs of the stage's table (M and the constant, whose columns follow
        their content).  Measured on a d_model-24 forecaster sharing 11 rescales: the top level 161 LUTs
        estimated against 176 synthesised, its one DSP48E1 exact, the design -0.7 %."""
        width = self.operand_bits
        ors = width * math.ceil((len(self.layers) - 1) / (LUT_INPUTS - 1))
        table = self.table()
        table_cost = table_luts(table[:, :1], self.multiplier_bits) + table_luts(table[:, 1:], self.product_bits)
        return {"DSP": multiplier_dsps(width, self.multiplier_bits), "LUT": ors + table_cost}


def shared_rescale(ops: list) -> SharedRescale | None:
    """The shared multiplier of the layers (in stage order) whose rescale is shared; None if none is."""
    layers = {}
    for stage, op in enumerate(ops):
        if op.shares_rescale():
            rescale = op.rescale()
            layers[stage] = Sharer(
                op.acc_bits(),
                rescale.multiplier,
                rescale.multiplier_bits + 1,
                op.rounding_half()[1],
                op.scaled_bits(),
            )
    return SharedRescale(layers, len(ops)) if layers else None
