"""Resource and cycle estimate of a design, in the report format of report/estimate.json."""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design
from qonnx_spartan.ops.base import RESOURCES, add_resources


def control_resources(design: Design) -> dict[str, int]:
    """The top level's own logic: loader and unloader counters, layer sequencer, read-address muxes."""
    counter_bits = math.ceil(math.log2(design.io.input.count + 1)) + math.ceil(math.log2(design.io.output.count + 1))
    stages = len(design.layers)
    mux_luts = sum(
        b.memory.address_bits * (len(b.readers) + (b is design.output_buffer) - 1) for b in design.buffers.values()
    )
    ff = counter_bits + 2 * stages + 4
    return {"LUT": counter_bits * 2 + stages * 2 + 8 + mux_luts, "FF": ff}


def estimate(model: ModelWrapper, budget: Budget | None = None) -> dict:
    design = Design(model)
    layers = {}
    for layer in design.layers:
        own = add_resources(layer.op.resources(), layer.op.output_buffer().resources())
        layers[layer.name] = {**own, "cycles": layer.op.cycles()}
    top = add_resources(control_resources(design), design.input_buffer.memory.resources())
    layers["top"] = {**top, "cycles": design.cycles() - sum(layer.op.cycles() for layer in design.layers)}
    total = add_resources(*({r: v[r] for r in RESOURCES} for v in layers.values()))
    budget = budget or Budget()
    cycles = design.cycles()
    overflows = budget.overflows(total)
    return {
        "total": total,
        "layers": layers,
        "cycles": cycles,
        "latency_us": cycles / budget.clock_mhz,
        "device": budget.device,
        "budget": budget.limits(),
        "fits": not overflows,
        "overflows": {r: {"used": u, "limit": lim} for r, (u, lim) in overflows.items()},
    }
