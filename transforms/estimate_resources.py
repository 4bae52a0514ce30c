"""Annotate a lowered model with its estimate, FINN-style: every node gets `res_estimate` (JSON: LUT,
LUTRAM, FF, BRAM18, DSP, its output buffer included) and `cycles_estimate`; the model's metadata gets the
totals (`res_total_estimate`, `cycles_estimate`), so tools downstream read them without re-estimating."""

from __future__ import annotations

import json

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qonnx_spartan.budget import Budget
from qonnx_spartan.estimate import estimate
from qonnx_spartan.ops.base import RESOURCES


class EstimateResources(Transformation):
    def __init__(self, budget: Budget | None = None):
        super().__init__()
        self.budget = budget
        self.report: dict | None = None  # the estimate.json document of the last application

    def apply(self, model: ModelWrapper):
        self.report = estimate(model, self.budget)
        for node in model.graph.node:
            layer = self.report["layers"][node.name]
            op = getCustomOp(node)
            op.set_nodeattr("res_estimate", json.dumps({r: layer[r] for r in RESOURCES}))
            op.set_nodeattr("cycles_estimate", int(layer["cycles"]))
        model.set_metadata_prop("res_total_estimate", json.dumps(self.report["total"]))
        model.set_metadata_prop("cycles_estimate", str(self.report["cycles"]))
        return model, False
