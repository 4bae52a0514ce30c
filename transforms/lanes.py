"""Give the MAC layers parallel lanes where the budget has room: fewer cycles for free resources.

Greedy and resource-aware: each round tries, on every IntLinear and IntMatMul, the next lane count (or
two) that takes a group off each row (counts in between only shorten the last group; an IntMatMul's
divide N), its new lanes on the spare DSPs, two to a DSP48E1 where one would not hold them (`dsp_pairs`),
and the rest as LUT multipliers (`logic_lanes`, templates/qs_mul_logic.vhd); it keeps the move that saves
the most cycles per unit of budget it uses (its largest fractional increase over the resources), and stops when no
move fits.  Lanes never change the numbers (ops/mac/int_linear.py), only the schedule.  Before that, a
design whose DSPs overflow has its products paired or moved into LUTs (a MAC layer's lanes, an elementwise
op's terms), fewest LUTs per DSP freed first, until the DSPs fit: a model is not refused for DSPs while LUTs
could hold its products.  Float-scale MAC layers may also put their rescales on one shared multiplier
(requantiser.py), which frees DSPs but makes those layers take it in turn (schedule.py): the step fits and
spends both with and without it, and keeps the faster design that fits.

Lanes are optional speed, so they do not spend the last few percent of the fitted resources (LUT, FF: the
estimate is within a few percent of synthesis, docs/estimator.md): `Budget.spendable` keeps some free.
"""

from __future__ import annotations

import copy
from functools import partial

from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design
from qonnx_spartan.estimate import estimate, layer_estimate, with_layer
from qonnx_spartan.ops.base import can_force_logic, multiplier_dsps
from qonnx_spartan.ops.elementwise.engine import Elementwise
from qonnx_spartan.ops.mac.engine import MacOp
from qonnx_spartan.plan import Plan
from qonnx_spartan.transforms.memory_style import AnnotateMemoryStyle, place, plan_styles, resolved_choice

MAX_LANES = 16
#: lane_objective's weights of the schedule's end.
BALANCED, END_FIRST = 1, 1000


class AnnotateLanes(Transformation):
    def __init__(
        self,
        budget: Budget | None = None,
        memory_style: str = "auto",
        max_lanes: int = MAX_LANES,
        plan: Plan | None = None,
    ):
        super().__init__()
        self.budget = budget or Budget()
        self.memory_style = memory_style
        self.max_lanes = max_lanes
        self.plan = plan
        self.fixed = None  # the plan's styles, matched once per apply
        self.cache = None  # the estimator's per-layer cache, one per apply
        self.current = None  # the estimate of the model with the lanes chosen so far

    def evaluate(self, model: ModelWrapper, changed: NodeProto | None = None) -> dict:
        """The estimate with the memories placed as the flow will place them (in place: the flow places
        them again after the lanes).  Placed by size, a memory's style depends on it alone: only the weight
        memories of the `changed` layer are placed again, and only that layer is estimated again, against
        the current estimate (estimate.with_layer)."""
        if changed is None or self.memory_style == "budget":
            AnnotateMemoryStyle(self.memory_style, self.budget, self.plan, self.fixed, self.cache).apply(model)
            return estimate(model, self.budget, cache=self.cache)
        self.place_weights(model, changed)
        layer = layer_estimate(getCustomOp(changed), self.budget.coefficients(), self.cache)
        return with_layer(self.current, changed.name, layer, self.budget, model)

    def place_weights(self, model: ModelWrapper, node: NodeProto) -> None:
        for role, memory in getCustomOp(node).weight_memories().items():
            place(model, (node.name, role), memory, self.memory_style, self.fixed)

    def try_move(self, model: ModelWrapper, node: NodeProto, **attrs) -> dict:
        """The estimate with `attrs` set on one layer, which is left as it was."""
        op = getCustomOp(node)
        before = {name: op.get_nodeattr(name) for name in attrs}
        for name, value in attrs.items():
            op.set_nodeattr(name, value)
        new = self.evaluate(model, node)
        for name, value in before.items():
            op.set_nodeattr(name, value)
        self.place_weights(model, node)
        return new

    def keep_move(self, model: ModelWrapper, node: NodeProto, new: dict, **attrs) -> None:
        op = getCustomOp(node)
        for name, value in attrs.items():
            op.set_nodeattr(name, value)
        self.place_weights(model, node)
        self.current = new

    def luts_per_dsp_freed(self, new: dict) -> float | None:
        """What a candidate estimate costs per DSP it frees against the current one; None when it frees none
        or the rest of the budget does not hold it."""
        freed = self.current["total"]["DSP"] - new["total"]["DSP"]
        others = {r: v for r, v in new["total"].items() if r != "DSP"}
        if freed <= 0 or self.budget.overflows(others):
            return None
        return (new["total"]["LUT"] - self.current["total"]["LUT"]) / freed

    def fit_dsps(self, model: ModelWrapper) -> None:
        """While the DSPs overflow, free DSPs of one more layer (`logic_move`: a MAC layer's lanes paired or in
        logic, an elementwise op's next term in logic): the move whose LUTs per DSP freed are fewest, as long
        as the rest of the budget holds them."""
        limits = self.budget.limits()
        while self.current["total"]["DSP"] > limits["DSP"]:
            candidates = []  # (cost, estimate, how to keep the move)
            for node in model.graph.node:
                move = logic_move(getCustomOp(node))
                if move is not None:
                    new = self.try_move(model, node, **move)
                    keep = partial(self.keep_move, model, node, new, **move)
                    candidates.append((self.luts_per_dsp_freed(new), new, keep))
            fitting = [c for c in candidates if c[0] is not None]
            if not fitting:
                return
            _, new, keep = min(fitting, key=lambda c: c[0])
            keep()
            self.current = new

    def fit_and_spend(self, model: ModelWrapper, spendable: dict, copies: str, end_weight: int, ahead: int) -> bool:
        """Fit the DSPs, then spend the rest; False (and nothing spent) when the DSPs do not fit.  `copies`:
        "first" gives readers copies before any lane, "among" weighs them with the lanes, "none" gives none;
        `end_weight` is lane_objective's, `ahead` lane_moves'."""
        self.current = self.evaluate(model)
        self.fit_dsps(model)
        if self.budget.overflows(self.current["total"]):
            return False  # nothing to spend: the budget check will say what overflows
        if copies == "first":
            self.copy_first(model, spendable)
        self.spend(model, spendable, copies == "among", end_weight, ahead)
        return True

    def copy_first(self, model: ModelWrapper, spendable: dict) -> None:
        """A copy for each reader that shares a read port, in node order, where it saves cycles and the
        budget holds it."""
        for node, move in copy_moves(model):
            new = self.try_move(model, node, **move)
            fits = not any(new["total"][r] > spendable[r] for r in spendable)
            if fits and new["cycles"] < self.current["cycles"]:
                self.keep_move(model, node, new, **move)

    def apply(self, model: ModelWrapper):
        self.fixed = plan_styles(model, self.plan) if self.plan is not None else {}  # lanes leave memories be
        self.cache = {}
        spendable = self.budget.spendable()
        # "auto" becomes "budget" where its placement overflows, as the memory step will decide
        self.memory_style = resolved_choice(model, self.memory_style, self.budget, self.plan)
        # The rescales on one multiplier free DSPs for lanes, but the layers that share it take it in turn;
        # copies of shared buffers let readers overlap, but spend LUTs that lanes could have (schedule.py):
        # the greedy does not see that far, so the step runs each way (copies first, among the lanes, none;
        # lanes weighed by the schedule's end first or by every layer's cycles too; moves one or two lane
        # counts ahead) and keeps the fastest design that fits.
        sharing = [n.name for n in model.graph.node if rescale_could_share(getCustomOp(n))]
        copy_kinds = ("among", "first", "none") if copy_moves(model) else ("none",)
        kinds = [(copy_kinds[0], weight, ahead) for ahead in (1, 2) for weight in (BALANCED, END_FIRST)]
        kinds += [(kind, BALANCED, 1) for kind in copy_kinds[1:]]
        ways = [(share, *kind) for share in (False, True)[: 1 + (len(sharing) >= 2)] for kind in kinds]
        original, best = copy.deepcopy(model.model), None  # best: (cycles, model, estimate)
        for k, (share, copies, end_weight, ahead) in enumerate(ways):
            candidate = model if k == 0 else ModelWrapper(copy.deepcopy(original))
            if share:
                set_sharing([n for n in candidate.graph.node if n.name in sharing], 1)
            fits = self.fit_and_spend(candidate, spendable, copies, end_weight, ahead)
            if best is None or (fits and self.current["cycles"] < best[0]):
                best = (self.current["cycles"] if fits else float("inf"), candidate, self.current)
        _, chosen, self.current = best
        return chosen, False

    def spend(self, model: ModelWrapper, spendable: dict, copies: bool, end_weight: int, ahead: int) -> None:
        """The greedy lanes (and, with `copies`, copies of shared input buffers): the move that saves the most
        cycles per unit of budget, until none fits."""
        limits = self.budget.limits()
        laned = [n for n in model.graph.node if "lanes" in getCustomOp(n).get_nodeattr_types()]
        while True:
            best = None
            totals, cycles = self.current["total"], lane_objective(self.current, end_weight)
            spare = spendable["DSP"] - totals["DSP"]
            moves = [
                (node, move)
                for node in laned
                for move in lane_moves(getCustomOp(node), spare, self.max_lanes, ahead)
            ]
            for node, move in moves + (copy_moves(model) if copies else []):
                if move is None:
                    continue
                new = self.try_move(model, node, **move)
                new_totals, new_cycles = new["total"], lane_objective(new, end_weight)
                if any(new_totals[r] > spendable[r] for r in spendable) or new_cycles >= cycles:
                    continue
                used = max((new_totals[r] - totals[r]) / max(limits[r], 1) for r in limits)
                gain = (cycles - new_cycles) / max(used, 1e-6)
                if best is None or gain > best[0]:
                    best = (gain, node, new, move)
            if best is None:
                return
            _, node, new, move = best
            self.keep_move(model, node, new, **move)


def lane_objective(estimate: dict, end_weight: int) -> int:
    """What the lanes shorten: the cycles per inference, `end_weight` times, plus the layers' own cycles.
    BALANCED counts a lane that shortens a layer off the schedule's critical path (schedule.py) too, since
    it may make room for the layers after it to start earlier; END_FIRST spends on the critical path and
    weighs the layers' cycles only between moves that leave the end where it is (w12 d64 b6: 44,083 cycles
    against 48,743, where lanes on ffn1 ran ahead of the ffn2 that consumes it; w6 d64 b8: 36,169 against
    34,795)."""
    layers = sum(v["cycles"] for name, v in estimate["layers"].items() if name != "top")
    return end_weight * estimate["cycles"] + layers


def copy_moves(model: ModelWrapper) -> list[tuple[NodeProto, dict]]:
    """A copy of its input buffer for each layer that shares the buffer's read port with another (the top
    level's `read_copies`): it may then read while the other does (qonnx_spartan/schedule.py)."""
    design = Design(model)
    moves = []
    for buffer in design.buffers.values():
        readers = design.shared_readers(buffer)
        if len(readers) < 2:
            continue
        for index, port in readers:
            memory = buffer.memory
            moves.append((model.graph.node[index], {f"{port}_copy": [memory.depth, memory.width]}))
    return moves


def lane_moves(op, spare_dsps: int, max_lanes: int, ahead: int) -> list[dict | None]:
    """The moves to the next `ahead` lane counts that take a group off each row: a count may not fit, or not
    pay, where the one after it does (w6 d64 b8's Q projection ROM in block RAM takes 3 RAMB18s at 6 lanes,
    4 at 7 and 2 at 8: the words get wider, the ROM shallower)."""
    targets = [op.next_lanes()]
    while len(targets) < ahead and targets[-1] is not None:
        targets.append(op.next_lanes(after=targets[-1]))
    return [lane_move(op, spare_dsps, max_lanes, target) for target in targets]


def lane_move(op, spare_dsps: int, max_lanes: int, target: int | None) -> dict | None:
    """The move to `target` lanes (None: none), its new lanes on the spare DSPs and the rest in LUTs; None
    when the lanes are at their clamp (K, N, the cap), the requested lanes are clamped already, or the
    products cannot go where they would have to."""
    current = op.lanes()
    k = op.loops()[3]
    if target is None or op.get_nodeattr("lanes") > current or target > min(k, max_lanes):
        return None
    added = target - current
    per_lane = multiplier_dsps(*op.signed_widths()) if op.wide_product() else 0
    pairs = 0
    if per_lane == 0:
        on_dsps = added
    elif op.can_pair():
        # two lanes per DSP48E1 where the spare DSPs alone would not hold them: pairs only as needed
        have, dsps = op.dsp_lanes(), op.dsp_lanes() - op.dsp_pairs() + max(spare_dsps, 0)
        on_dsps = min(added, 2 * dsps - have)
        pairs = max(op.dsp_pairs(), have + on_dsps - dsps)
    else:
        on_dsps = min(added, max(spare_dsps, 0) // per_lane)
    if on_dsps < added and not logic_form(op):
        return None
    return {"lanes": target, "logic_lanes": op.logic_lanes() + added - on_dsps, "dsp_pairs": pairs}


def logic_move(op) -> dict | None:
    """The attributes that free DSPs of a layer: its DSP lanes in pairs (two products per DSP48E1), then all
    lanes of a MAC layer in LUTs, the next term of an elementwise op; None when there is none to move."""
    if isinstance(op, MacOp) and op.can_pair() and op.dsp_pairs() < op.dsp_lanes() // 2:
        return {"dsp_pairs": op.dsp_lanes() // 2}
    if isinstance(op, MacOp) and op.dsp_lanes() and logic_form(op):
        return {"logic_lanes": op.lanes()}
    if isinstance(op, Elementwise):
        for i in range(op.get_nodeattr("logic_terms"), len(op.terms())):
            if op.term_can_be_logic(i):
                return {"logic_terms": i + 1}
    return None


def set_sharing(nodes: list[NodeProto], value: int) -> None:
    """Put the rescales of `nodes` on the shared multiplier (1) or back on their own (0)."""
    for node in nodes:
        getCustomOp(node).set_nodeattr("shared_rescale", value)


def rescale_could_share(op) -> bool:
    """Whether a layer's own rescale multiplier could move to the shared one (a MAC layer's, on a DSP)."""
    return isinstance(op, MacOp) and op.scale_on_dsp() and not op.shares_rescale()


def logic_form(op) -> bool:
    """Whether a layer's wide products could be built in logic (a form booth maps, measured by
    calibration/logic_products.py)."""
    return op.wide_product() and can_force_logic(*op.signed_widths())
