"""Give the linear layers parallel MAC lanes where the budget has room: fewer cycles for free resources.

Greedy and resource-aware: each round tries one more lane on every IntLinear, keeps the move that saves
the most cycles per unit of budget it uses (its largest fractional increase over the resources), and
stops when no move fits.  Lanes never change the numbers (ops/mac/int_linear.py), only the schedule.

Lanes are optional speed, so they do not spend the last few percent of the fitted resources (LUT, FF: the
estimate is within a few percent of synthesis, docs/estimator.md): HEADROOM of them stays free.
"""

from __future__ import annotations

from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qonnx_spartan.budget import Budget
from qonnx_spartan.coefficients import FITTED
from qonnx_spartan.estimate import estimate, layer_estimate, with_layer
from qonnx_spartan.plan import Plan
from qonnx_spartan.transforms.memory_style import AnnotateMemoryStyle, place, plan_styles

MAX_LANES = 16
HEADROOM = 0.05


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
        return with_layer(self.current, changed.name, layer, self.budget)

    def place_weights(self, model: ModelWrapper, node: NodeProto) -> None:
        for role, memory in getCustomOp(node).weight_memories().items():
            place(model, (node.name, role), memory, self.memory_style, self.fixed)

    def apply(self, model: ModelWrapper):
        self.fixed = plan_styles(model, self.plan) if self.plan is not None else {}  # lanes leave memories be
        self.cache = {}
        limits = self.budget.limits()
        spendable = {r: int(v * (1 - HEADROOM)) if r in FITTED else v for r, v in limits.items()}
        self.current = self.evaluate(model)
        if self.budget.overflows(self.current["total"]):
            return model, False  # nothing to spend: the budget check will say what overflows
        linear = [n for n in model.graph.node if n.op_type == "IntLinear"]
        while True:
            best = None
            totals, cycles = self.current["total"], self.current["cycles"]
            for node in linear:
                op = getCustomOp(node)
                current = op.lanes()
                if current >= self.max_lanes or op.get_nodeattr("lanes") > current:
                    continue  # already at the clamp (K, N) or the cap
                op.set_nodeattr("lanes", current + 1)
                new = self.evaluate(model, node)
                op.set_nodeattr("lanes", current)
                self.place_weights(model, node)
                new_totals, new_cycles = new["total"], new["cycles"]
                if any(new_totals[r] > spendable[r] for r in spendable) or new_cycles >= cycles:
                    continue
                used = max((new_totals[r] - totals[r]) / max(limits[r], 1) for r in limits)
                gain = (cycles - new_cycles) / max(used, 1e-6)
                if best is None or gain > best[0]:
                    best = (gain, node, new)
            if best is None:
                return model, False
            _, node, self.current = best
            op = getCustomOp(node)
            op.set_nodeattr("lanes", op.lanes() + 1)
            self.place_weights(model, node)
