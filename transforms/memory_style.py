"""Choose, per memory, block RAM or distributed RAM (LUTRAM).

`AnnotateMemoryStyle("block" | "distributed")` puts every memory in one style (a small table of
constants, such as a BatchNorm's per-channel parameters, stays in LUTs under "block"); "auto" puts a memory in
block RAM when it fills at least a quarter of a RAMB18 (4,608 bits) and in LUTs otherwise, which keeps
small buffers from wasting a whole block; the build places them as "budget" does when that overflows the
budget (`resolved_choice`).  "budget" starts with every memory in LUTs and, while the LUTs (or LUTRAM)
are over what the budget makes spendable (Budget.spendable), moves to block RAM the memory that saves the
most of them per BRAM18 spent, as long as the BRAM18 fit: on a small device the LUTs run out first, and
block RAM left empty is wasted.
If nothing fits, the budget check names the resources over.

A plan's out_mem_style and weight_mem_style fix, in every mode, the output buffer and the weight memories of
the layers lowered from the nodes an entry names.  The graph input's buffer has no producing op, so its
style is kept in the model's metadata.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qonnx_spartan.budget import Budget
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import estimate, layer_estimate
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.memory import INPUT_STYLE_KEY, STYLES, Memory, input_buffer_style
from qonnx_spartan.plan import Namespace, Plan
from qonnx_spartan.transforms.lower import lowered_sources

AUTO_BLOCK_BITS = 18 * 1024 // 4
MEMORY_CHOICES = (*STYLES, "auto", "budget")
#: What moving a memory to block RAM relieves.
LUT_RESOURCES = ("LUT", "LUTRAM")

#: A memory: (layer, role).  The layer is the op node's name, None for the input buffer; the role is "out"
#: for the buffer a layer writes, else the weight memory's role (op.weight_memories()).
Slot = tuple[str | None, str]


def pick_style(choice: str, depth: int, width: int) -> str:
    if choice == "auto":
        return "block" if depth * width >= AUTO_BLOCK_BITS else "distributed"
    return "distributed" if choice == "budget" else choice


def memories(model: ModelWrapper) -> dict[Slot, Memory]:
    io = HostIO.load(model)
    slots = {(None, "out"): Memory(io.input.count, io.input.dtype.bits, input_buffer_style(model))}
    for node in model.graph.node:
        op = getCustomOp(node)
        slots[(node.name, "out")] = op.output_buffer()
        slots.update({(node.name, role): mem for role, mem in op.weight_memories().items()})
    return slots


def set_style(model: ModelWrapper, slot: Slot, style: str) -> None:
    layer, role = slot
    if layer is None:
        model.set_metadata_prop(INPUT_STYLE_KEY, style)
    else:
        getCustomOp(model.get_node_from_name(layer)).set_memory_style(role, style)


class AnnotateMemoryStyle(Transformation):
    def __init__(
        self,
        choice: str = "auto",
        budget: Budget | None = None,
        plan: Plan | None = None,
        fixed: dict[Slot, str] | None = None,
        cache: dict | None = None,
    ):
        """`fixed`: the plan's styles already matched to this model's memories (plan_styles), and `cache`
        the estimator's (estimate.layer_estimate), for callers that place the same model's memories many
        times (the lanes search)."""
        super().__init__()
        if choice not in MEMORY_CHOICES:
            raise SpartanError(f"memory style '{choice}' is not one of {', '.join(MEMORY_CHOICES)}")
        self.choice = choice
        self.budget = budget or Budget()
        self.plan = plan
        self.fixed = fixed
        self.cache = cache

    def apply(self, model: ModelWrapper):
        fixed = self.fixed
        if fixed is None:
            fixed = plan_styles(model, self.plan) if self.plan is not None else {}
        free = []
        for slot, mem in memories(model).items():
            place(model, slot, mem, self.choice, fixed)
            if slot not in fixed:
                free.append(slot)
        if self.choice == "budget":
            fit_to_budget(model, free, self.budget, self.cache)
        return model, False


def resolved_choice(model: ModelWrapper, choice: str, budget: Budget, plan: Plan | None = None) -> str:
    """The placement the build uses for `choice`: "auto" becomes "budget" when its placement overflows the
    budget in what a placement moves (LUTs, LUTRAM, block RAMs), which fits the LUTs with the block RAMs (a
    design is not refused for one placement while another might fit).  The memories are left placed."""
    if choice != "auto":
        return choice
    AnnotateMemoryStyle("auto", budget, plan).apply(model)
    overflows = estimate(model, budget)["overflows"]
    return "budget" if any(resource in overflows for resource in (*LUT_RESOURCES, "BRAM18")) else "auto"


def place(model: ModelWrapper, slot: Slot, memory: Memory, choice: str, fixed: dict[Slot, str]) -> None:
    """One memory's style: the plan's, else the choice's for its size ("budget" starts in LUTs; a table of
    constants stays there under "block", which means the data's memories)."""
    chosen = "distributed" if memory.table and choice == "block" else pick_style(choice, memory.depth, memory.width)
    set_style(model, slot, fixed.get(slot) or chosen)


def plan_styles(model: ModelWrapper, plan: Plan) -> dict[Slot, str]:
    """The styles the plan fixes: an entry's out_mem_style places the output buffer, its weight_mem_style
    every weight memory, of each layer lowered from a node the entry names."""
    sources = lowered_sources(model)
    io = HostIO.load(model)
    layers: dict[str | None, list[str]] = {None: [io.input.name, *sources.get(io.input.name, [])]}
    for node in model.graph.node:
        source = getCustomOp(node).get_nodeattr("source")
        layers[node.name] = [node.name, source, node.output[0], *sources.get(node.output[0], [])]
    names = Namespace(name for layer_names in layers.values() for name in layer_names)
    styled = [key for key, entry in plan.items() if entry.out_mem_style or entry.weight_mem_style]
    names.check(plan, styled)  # bit widths were set before the lowering
    fixed: dict[Slot, tuple[str, str]] = {}  # slot -> (style, plan key)
    for key, entry in plan.items():
        named = [layer for layer, layer_names in layers.items() if names.selects(key, layer_names)]
        for field, style in (("out_mem_style", entry.out_mem_style), ("weight_mem_style", entry.weight_mem_style)):
            if style is None:
                continue
            if field == "out_mem_style":
                slots = [(layer, "out") for layer in named]
            else:
                slots = [(layer, role) for layer in named if layer is not None for role in weight_roles(model, layer)]
                if not slots:
                    raise SpartanError(
                        f"{plan.where(key)}: {field} is set, but the layers it names have no weight memory"
                    )
            for slot in slots:
                earlier = fixed.setdefault(slot, (style, key))
                if earlier[0] != style:
                    raise SpartanError(
                        f"{plan.where(key)}: {field} {style} contradicts entry '{earlier[1]}' ({earlier[0]}) "
                        f"for the {slot[1]} memory of layer '{slot[0] or io.input.name}'"
                    )
    return {slot: style for slot, (style, _) in fixed.items()}


def weight_roles(model: ModelWrapper, layer: str) -> list[str]:
    return list(getCustomOp(model.get_node_from_name(layer)).weight_memories())


def fit_to_budget(model: ModelWrapper, free: list[Slot], budget: Budget, cache: dict | None = None) -> None:
    """Move free memories (now all in LUTs) to block RAM, the most LUTs saved per BRAM18 first, while the
    LUTs overflow what is spendable (block RAM left empty is wasted, a LUT estimate near the limit is not a
    safe margin) and the BRAM18 fit."""
    limits, targets = budget.limits(), budget.spendable()
    base = estimate(model, budget, cache=cache)
    totals = dict(base["total"])
    over = [r for r in LUT_RESOURCES if totals[r] > targets[r]]
    deltas = block_ram_deltas(model, free, budget, base, cache) if over else {}
    while over:
        best = None
        for slot, delta in deltas.items():
            saved = -sum(delta[r] for r in over)
            fits = all(totals[r] + d <= limits[r] for r, d in delta.items() if d > 0 and r not in LUT_RESOURCES)
            gain = saved / max(delta["BRAM18"], 1)
            if saved > 0 and fits and (best is None or gain > best[0]):
                best = (gain, slot)
        if best is None:
            return
        delta = deltas.pop(best[1])
        set_style(model, best[1], "block")
        totals = {r: totals[r] + delta[r] for r in totals}
        over = [r for r in LUT_RESOURCES if totals[r] > targets[r]]


def block_ram_deltas(
    model: ModelWrapper, free: list[Slot], budget: Budget, base: dict, cache: dict | None = None
) -> dict[Slot, dict]:
    """What moving each free memory to block RAM changes in the totals.  A memory is part of its own layer's
    cost only ("top" for the input buffer), so the k-th free memory of every layer can be in block RAM at
    once; each layer is estimated alone (no schedule), and the whole design only for the input buffer."""
    by_layer: dict[str | None, list[Slot]] = {}
    for slot in free:
        by_layer.setdefault(slot[0], []).append(slot)
    coefficients = budget.coefficients()
    deltas = {}
    for k in range(max(map(len, by_layer.values()), default=0)):
        group = [slots[k] for slots in by_layer.values() if len(slots) > k]
        for slot in group:
            set_style(model, slot, "block")
        moved = {}
        for layer, _ in group:
            if layer is None:
                moved["top"] = estimate(model, budget, cache=cache)["layers"]["top"]
            else:
                moved[layer] = layer_estimate(getCustomOp(model.get_node_from_name(layer)), coefficients, cache)
        for slot in group:
            set_style(model, slot, "distributed")
            layer = slot[0] if slot[0] is not None else "top"
            deltas[slot] = {r: moved[layer][r] - base["layers"][layer][r] for r in base["total"]}
    return deltas
