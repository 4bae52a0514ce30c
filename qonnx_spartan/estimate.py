"""Resource and cycle estimate of a design, in the report format of report/estimate.json.

A layer is its op's engine, its weight memories and its output buffer; "top" is the control and the input
buffer.  Each part states its features (qonnx_spartan/coefficients.py turns them into LUT and FF) and its
exact counts (DSP, BRAM18, LUTRAM).
"""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.budget import Budget
from qonnx_spartan.coefficients import Coefficients, fitted
from qonnx_spartan.design import Design
from qonnx_spartan.memory import Memory
from qonnx_spartan.ops.base import RESOURCES, add_resources

#: A part of a layer: (coefficient group, features, exact resources).
Part = tuple[str, dict[str, float], dict[str, int]]


def control_features(design: Design) -> dict[str, float]:
    """The top level's own logic: loader and unloader counters, the layer sequencer, and the read-address
    multiplexers of buffers that several layers read."""
    return {
        "one": 1,
        "counter_bits": math.ceil(math.log2(design.io.input.count + 1))
        + math.ceil(math.log2(design.io.output.count + 1)),
        "stages": len(design.layers),
        "read_mux_bits": sum(
            b.memory.address_bits * (len(b.readers) + (b is design.output_buffer) - 1) for b in design.buffers.values()
        ),
    }


def memory_part(memory: Memory) -> Part:
    return ("memory", memory.features(), memory.exact_resources())


def layer_parts(design: Design) -> dict[str, list[Part]]:
    """Every layer's parts, and the top level's under "top"."""
    parts = {}
    for layer in design.layers:
        op = layer.op
        parts[layer.name] = [
            (op.resource_group, op.resource_features(), op.exact_resources()),
            *(memory_part(mem) for mem in op.weight_memories().values()),
            memory_part(op.output_buffer()),
        ]
    parts["top"] = [("control", control_features(design), {}), memory_part(design.input_buffer.memory)]
    return parts


def part_resources(parts: list[Part], coefficients: Coefficients | None = None) -> dict[str, int]:
    return add_resources(*(add_resources(fitted(group, f, coefficients), exact) for group, f, exact in parts))


def estimate(model: ModelWrapper, budget: Budget | None = None, coefficients: Coefficients | None = None) -> dict:
    budget = budget or Budget()
    coefficients = coefficients or budget.coefficients()
    design = Design(model)
    layers = {name: part_resources(parts, coefficients) for name, parts in layer_parts(design).items()}
    for layer in design.layers:
        layers[layer.name]["cycles"] = layer.op.cycles()
    layers["top"]["cycles"] = design.cycles() - sum(layer.op.cycles() for layer in design.layers)
    total = add_resources(*({r: v[r] for r in RESOURCES} for v in layers.values()))
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
