"""Resource and cycle estimate of a design, in the report format of report/estimate.json.

A layer is its op's engine, its weight memories and its output buffer; "top" is the control and the input
buffer.  Each part states its features (qonnx_spartan/coefficients.py turns them into LUT and FF) and its
exact counts (DSP, BRAM18, LUTRAM).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.budget import Budget
from qonnx_spartan.coefficients import Coefficients, fitted
from qonnx_spartan.design import Design
from qonnx_spartan.memory import Memory
from qonnx_spartan.ops import OPS
from qonnx_spartan.ops.base import RESOURCES, add_resources, counter_bits

#: A part of a layer: (coefficient group, features, exact resources).
Part = tuple[str, dict[str, float], dict[str, int]]
#: The coefficient groups of the parts that are not an op's engine.
MEMORY_GROUP, CONTROL_GROUP = "memory", "control"


def coefficient_groups() -> list[str]:
    """Every coefficient group the estimator asks for: each registered op's engine's (qonnx_spartan/ops),
    the memories' and the top level's control."""
    return sorted({op.resource_group for op in OPS.values()} | {MEMORY_GROUP, CONTROL_GROUP})


def control_features(design: Design) -> dict[str, float]:
    """The top level's own logic: loader and unloader counters, the layer sequencer, and the read-address
    multiplexers of buffers that several layers (or a layer and the unloader) read.  Several outputs share
    the unloader's counter, which counts to the longest, add a counter over the outputs, and give each output
    buffer one more address choice (0 while another output streams)."""
    several = len(design.output_buffers) > 1
    unloaded = {id(b) for b in design.output_buffers}
    return {
        "one": 1,
        "counter_bits": counter_bits(design.io.input.count)
        + counter_bits(max(o.count for o in design.io.outputs))
        + counter_bits(len(design.io.outputs))
        + sequencer_bits(design),
        "stages": len(design.layers),
        "read_mux_bits": sum(
            b.memory.address_bits * (ports - 1)
            for b in design.buffers.values()
            if (ports := len(design.shared_readers(b)) + (1 + several) * (id(b) in unloaded)) > 0
        ),
    }


def sequencer_bits(design: Design) -> int:
    """Register bits of the layer sequencer.  Layers in turn: a counter over the layers.  Overlapping layers
    (schedule.py): a counter over the schedule's cycles, and a busy flag per layer whose read port shares a
    buffer or that shares the rescale multiplier, which selects the port or the multiplier's constants (a
    register with its set and clear, weighed as a counter bit; the other flags drive nothing and synthesis
    removes them)."""
    schedule = design.schedule
    if not schedule.overlaps:
        return counter_bits(len(design.layers))
    unloaded = {id(b) for b in design.output_buffers}
    shared = {
        i
        for b in design.buffers.values()
        if len(readers := design.shared_readers(b)) + (id(b) in unloaded) > 1
        for i, _ in readers
    }
    rescale = design.shared_rescale
    return counter_bits(schedule.end + 1) + len(shared | set(rescale.layers if rescale else ()))


def memory_part(memory: Memory) -> Part:
    return (MEMORY_GROUP, memory.features(), memory.exact_resources())


def op_parts(op) -> list[Part]:
    """A layer's parts: its op's engine, weight memories, copies of an input buffer (its engine's, the top
    level's for it alone) and output buffer."""
    return [
        (op.resource_group, op.resource_features(), op.exact_resources()),
        *(memory_part(mem) for mem in op.weight_memories().values()),
        *(memory_part(mem) for mem in op.buffer_copies()),
        *(memory_part(mem) for mem in op.read_copies().values()),
        memory_part(op.output_buffer()),
    ]


def top_parts(design: Design) -> list[Part]:
    """The top level's parts: its control, the input buffer, and the rescale multiplier layers share
    (counted: requantiser.py)."""
    shared = design.shared_rescale
    return [
        (CONTROL_GROUP, control_features(design), shared.resources() if shared else {}),
        memory_part(design.input_buffer.memory),
    ]


def layer_parts(design: Design) -> dict[str, list[Part]]:
    """Every layer's parts, and the top level's under "top"."""
    return {**{layer.name: op_parts(layer.op) for layer in design.layers}, "top": top_parts(design)}


def layer_estimate(op, coefficients: Coefficients, cache: dict | None) -> dict[str, int]:
    """A layer's resources and cycles.  The searches estimate one model many times changing one layer at a
    time: `cache`, keyed by the layer's node as serialised (every attribute that decides its hardware),
    spares the layers that did not change."""
    key = op.onnx_node.SerializeToString() if cache is not None else None
    if key is not None and key in cache:
        return dict(cache[key])
    result = {**part_resources(op_parts(op), coefficients), "cycles": op.cycles()}
    if key is not None:
        cache[key] = dict(result)
    return result


def part_resources(parts: list[Part], coefficients: Coefficients | None = None) -> dict[str, int]:
    return add_resources(*(add_resources(fitted(group, f, coefficients), exact) for group, f, exact in parts))


def estimate(
    model: ModelWrapper,
    budget: Budget | None = None,
    coefficients: Coefficients | None = None,
    cache: dict | None = None,
) -> dict:
    """The estimate.json document; `cache` as for `layer_estimate` (one cache per budget)."""
    budget = budget or Budget()
    coefficients = coefficients or budget.coefficients()
    design = Design(model)
    layers = {layer.name: layer_estimate(layer.op, coefficients, cache) for layer in design.layers}
    layers["top"] = {**part_resources(top_parts(design), coefficients), "cycles": design.top_cycles()}
    return report(layers, budget, design)


def with_layer(document: dict, name: str, layer: dict[str, int], budget: Budget, model: ModelWrapper) -> dict:
    """The estimate.json document with one layer's estimate replaced.  A layer's lanes and weight memories
    are part of its own estimate only (the top level's counts its control, the input buffer and the output
    buffers' addresses), so a search changing them re-estimates that layer alone, and the top level, whose
    sequencer counts the schedule's cycles (schedule.py), which `model` gives."""
    design = Design(model)
    top = {**part_resources(top_parts(design), budget.coefficients()), "cycles": design.top_cycles()}
    return report({**document["layers"], name: layer, "top": top}, budget, design)


def report(layers: dict[str, dict[str, int]], budget: Budget, design: Design) -> dict:
    """The estimate.json document of the layers' estimates, the top level's ("top") included; each layer's
    start cycle and the cycles per inference are the design's schedule's (schedule.py)."""
    total = add_resources(*({r: v[r] for r in RESOURCES} for v in layers.values()))
    for layer, start in zip(design.layers, design.schedule.starts):
        layers[layer.name] = {**layers[layer.name], "start": start}
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
