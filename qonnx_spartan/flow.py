"""The build flow, FINN-style: a pydantic config with an ordered list of named steps.

Each step takes and returns a ModelWrapper; the model after every step is saved under
OUT/intermediate_models/.  A step is a name from STEPS or any callable `step(model, cfg, ctx)`, so users
can reorder, drop or replace steps.  The output folder is written in a temporary folder beside it and moved
into place only when every step succeeded, so a failed build leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from pydantic import BaseModel, ConfigDict, field_validator
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.backend import FILE_LIST, generate, write_vivado_project
from qonnx_spartan.budget import Budget, budget_to_json, load_budget
from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import estimate
from qonnx_spartan.hostio import METADATA_KEY
from qonnx_spartan.model_file import load_model
from qonnx_spartan.plan import Plan, load_plan
from qonnx_spartan.transforms import (
    AnnotateBitwidths,
    AnnotateLanes,
    AnnotateMemoryStyle,
    Canonicalise,
    EstimateResources,
    LowerToIntegerOps,
    Tidy,
)
from qonnx_spartan.transforms.memory_style import MEMORY_CHOICES, resolved_choice
from qonnx_spartan.transforms.scoped_names import ScopedNames

Step = Union[str, Callable]


@dataclass
class BuildContext:
    """What steps share besides the model: the folder being written, the budget, the plan, the reports so far."""

    work_dir: Path
    budget: Budget
    plan: Plan | None = None
    reports: dict = field(default_factory=dict)


def step_bitwidths(model: ModelWrapper, cfg: "BuildConfig", ctx: BuildContext) -> ModelWrapper:
    model = model.transform(ScopedNames(), cleanup=False)  # the default exporter's nodes named by module scope
    return model.transform(AnnotateBitwidths(ctx.plan)) if ctx.plan is not None else model


def step_tidy(model: ModelWrapper, cfg: "BuildConfig", ctx: BuildContext) -> ModelWrapper:
    return model.transform(Tidy(), cleanup=False)  # Tidy leaves the model cleaned up: once more changes nothing


def step_canonicalise(model, cfg, ctx):
    return model.transform(Canonicalise(), cleanup=False)  # unchanged when already canonical


def step_lower(model, cfg, ctx):
    return model.transform(LowerToIntegerOps())


def step_lanes(model, cfg, ctx):
    if cfg.lanes == "auto":
        return model.transform(AnnotateLanes(ctx.budget, cfg.memory_style, plan=ctx.plan))
    for node in model.graph.node:
        op = getCustomOp(node)
        if "lanes" in op.get_nodeattr_types():  # IntLinear, IntMatMul (each clamps them to its loops)
            op.set_nodeattr("lanes", cfg.lanes)
    return model


def step_memory_style(model, cfg, ctx):
    choice = resolved_choice(model, cfg.memory_style, ctx.budget, ctx.plan)
    return model.transform(AnnotateMemoryStyle(choice, ctx.budget, ctx.plan))


def step_estimate(model, cfg, ctx):
    annotate = EstimateResources(ctx.budget)
    model = model.transform(annotate)
    ctx.reports["estimate"] = annotate.report
    write_json(ctx.work_dir / "report" / "estimate.json", annotate.report)
    return model


def step_check_budget(model, cfg, ctx):
    report = ctx.reports.get("estimate") or estimate(model, ctx.budget)
    if report["overflows"]:
        over = ", ".join(
            f"{r} {v['used']} > {v['limit']} (over by {v['used'] - v['limit']})" for r, v in report["overflows"].items()
        )
        hint = "" if ctx.plan is not None else "; narrower bit widths may fit: `qonnx-spartan search` finds them"
        raise SpartanError(f"the design does not fit the budget for {ctx.budget.device}: {over}{hint}")
    return model


def step_generate_hdl(model, cfg, ctx):
    ctx.reports["names"] = generate(Design(model), ctx.work_dir)
    sources = (ctx.work_dir / "hdl" / FILE_LIST).read_text().split()
    write_vivado_project(ctx.work_dir, sources, cfg.part or ctx.budget.profile.part, ctx.budget.clock_mhz)
    return model


STEPS: dict[str, Callable] = {
    "bitwidths": step_bitwidths,
    "tidy": step_tidy,
    "canonicalise": step_canonicalise,
    "lower": step_lower,
    "lanes": step_lanes,
    "memory_style": step_memory_style,
    "estimate": step_estimate,
    "check_budget": step_check_budget,
    "generate_hdl": step_generate_hdl,
}
DEFAULT_STEPS = list(STEPS)


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: Path
    output_dir: Path
    budget: Union[Budget, Path, None] = None
    plan: Union[Plan, Path, None] = None  # bit widths and memory styles per layer (qonnx_spartan/plan.py)
    estimator: Path | None = None  # coefficients from `qonnx-spartan calibrate`, instead of the budget's
    memory_style: str = "auto"
    lanes: Union[int, str] = "auto"  # MAC lanes per linear layer and attention product: a number, or "auto"
    steps: list[Step] = DEFAULT_STEPS
    part: str | None = None  # Vivado part for OUT/vivado/build.tcl; default: the budget device's
    start_step: str | None = None  # the model file is that step's input
    stop_step: str | None = None  # the last step run
    save_intermediate_models: bool = True

    @field_validator("lanes")
    @classmethod
    def _lanes(cls, v):
        if v != "auto" and (not isinstance(v, int) or v < 1):
            raise ValueError(f"lanes must be a positive number or 'auto', not {v!r}")
        return v

    @field_validator("memory_style")
    @classmethod
    def _style(cls, v: str) -> str:
        if v not in MEMORY_CHOICES:
            raise ValueError(f"memory style '{v}' is not one of {', '.join(MEMORY_CHOICES)}")
        return v

    def resolved_budget(self) -> Budget:
        if isinstance(self.budget, Budget):
            budget = self.budget
        else:
            budget = load_budget(self.budget) if self.budget is not None else Budget()
        return budget.with_estimator(self.estimator)

    def resolved_plan(self) -> Plan | None:
        return load_plan(self.plan) if isinstance(self.plan, Path) else self.plan

    def step_name(self, step: Step) -> str:
        return step if isinstance(step, str) else getattr(step, "__name__", "custom_step")

    def selected_steps(self) -> list[tuple[str, Callable]]:
        names = [self.step_name(s) for s in self.steps]
        for bound in (self.start_step, self.stop_step):
            if bound is not None and bound not in names:
                raise SpartanError(f"build config: step '{bound}' is not among the steps {names}")
        first = names.index(self.start_step) if self.start_step else 0
        last = names.index(self.stop_step) if self.stop_step else len(names) - 1
        selected = []
        for name, step in zip(names[first : last + 1], self.steps[first : last + 1]):
            if isinstance(step, str):
                if step not in STEPS:
                    raise SpartanError(f"build config: unknown step '{step}' (known: {', '.join(STEPS)})")
                step = STEPS[step]
            selected.append((name, step))
        return selected


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def build(cfg: BuildConfig, progress: Callable[[str], None] | None = None) -> ModelWrapper:
    """Run the configured steps and publish OUT (hdl/, sim/, model_int.onnx, report/) atomically."""
    budget, plan = cfg.resolved_budget(), cfg.resolved_plan()
    steps = cfg.selected_steps()
    model = load_model(cfg.model)
    out = cfg.output_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        ctx = BuildContext(work_dir=work, budget=budget, plan=plan)
        for k, (name, step) in enumerate(steps):
            if progress:
                progress(name)
            model = step(model, cfg, ctx)
            if cfg.save_intermediate_models:
                (work / "intermediate_models").mkdir(exist_ok=True)
                model.save(str(work / "intermediate_models" / f"{k:02d}_{name}.onnx"))
        model.save(str(work / "model_int.onnx"))
        write_json(
            work / "report" / "build.json",
            {
                "steps": [n for n, _ in steps],
                "budget": budget_to_json(budget),
                "plan": plan.to_json() if plan is not None else None,
                "names": ctx.reports.get("names"),
            },
        )
        publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return model


def estimate_only(cfg: BuildConfig) -> dict:
    """The estimate.json document of the configured steps up to "estimate", without writing a build.  A
    model that is already lowered (a build's model_int.onnx) is estimated as it is: its lanes and memory
    styles were decided when it was built."""
    model = load_model(cfg.model)
    start = "estimate" if model.get_metadata_prop(METADATA_KEY) and cfg.start_step is None else cfg.start_step
    cfg = cfg.model_copy(update={"stop_step": "estimate", "start_step": start, "save_intermediate_models": False})
    budget, plan = cfg.resolved_budget(), cfg.resolved_plan()
    with tempfile.TemporaryDirectory(prefix="qs_estimate_") as tmp:
        ctx = BuildContext(work_dir=Path(tmp), budget=budget, plan=plan)
        for _, step in cfg.selected_steps():
            model = step(model, cfg, ctx)
    return ctx.reports["estimate"]


def publish(work: Path, out: Path) -> None:
    """Move the finished folder into place, replacing an earlier build."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old.{os.getpid()}"
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
