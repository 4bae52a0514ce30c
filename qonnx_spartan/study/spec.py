"""The study file: which models, which configurations, which data, which stages (YAML or JSON, pydantic).

    name: smoke
    model: {paths: [../forecasting], build: "model:build_model", params: {features: 3, heads: 1, po2: true}}
    data: {load: "data:make_dataset"}
    grid: {window: [6], d_model: [16, 32], bits: [4, 8]}     # every combination; `configs:` lists more
    stages: [export, estimate, build]

docs/study.md describes every field.  Every problem is one SpartanError line naming the file and field.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qonnx_spartan.budget import Budget
from qonnx_spartan.config_file import read_config, validated
from qonnx_spartan.devices import DEVICES
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.search import parse_bits
from qonnx_spartan.transforms.memory_style import MEMORY_CHOICES

#: Stages in the order they run for one configuration and seed.
STAGES = ("export", "estimate", "search", "train", "build", "simulate", "synth")
#: What each stage reads.
NEEDS = {
    "estimate": ("export",),
    "search": ("export", "estimate"),
    "build": ("export",),
    "simulate": ("build",),
    "synth": ("build",),
}
#: When a conditional stage runs, judged on the estimate (and the search, where it ran):
#: always; unfit = no memory style fits; fits = a style or the search's plan fits; made_deployable = the
#: first style (all in LUTs) does not fit but another style or the search's plan does.
When = Literal["always", "unfit", "fits", "made_deployable"]

Positive = Annotated[int, Field(ge=1, strict=True)]
Callable_ = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(Strict):
    #: "module:function" returning the (untrained) Brevitas model; called with the configuration's values
    #: and `params` that its signature names, and quant=False for the float model of the train stage
    build: Callable_
    #: folders put on sys.path on the client and every worker, relative to the study file
    paths: list[Path] = []
    params: dict[str, Any] = {}
    #: values only the quantised model depends on: the float model is trained once for all of them
    quant_params: list[str] = ["bits"]


class DataSpec(Strict):
    #: "module:function" returning the data set: .train/.val/.test with .x (N, ...) float inputs and .y (N,)
    #: targets, .denormalise(y) to the data's units; called with the configuration's values it names
    load: Callable_
    params: dict[str, Any] = {}
    #: training windows the untrained model's activation ranges are calibrated on (export)
    calibration_batches: Positive = 8
    calibration_batch: Positive = 16


class EstimateSpec(Strict):
    #: memory placements estimated, in order of preference (the first is the all-LUT reference)
    memory_styles: list[str] = ["distributed", "budget"]
    lanes: Union[Positive, Literal["auto"]] = 1

    @field_validator("memory_styles")
    @classmethod
    def _styles(cls, v):
        unknown = [s for s in v if s not in MEMORY_CHOICES]
        if unknown or not v:
            raise ValueError(f"memory styles are some of {', '.join(MEMORY_CHOICES)}, not {unknown or v}")
        return v


class SearchSpec(Strict):
    bits: list[int] = [4, 6, 8]
    points: Positive = 1
    #: validation windows, evenly spaced, the plan's error is measured on (against the model's own outputs)
    calib_windows: Positive = 64
    when: When = "unfit"

    @field_validator("bits")
    @classmethod
    def _bits(cls, v):
        parse_bits(",".join(map(str, v)))
        return v


class TrainSpec(Strict):
    #: "module:function" (model, metrics with test_rmse) = train(**values it names, seed, epochs, quant,
    #: init_from, data, plan): the example's examples/forecasting/train.py `train`
    function: Callable_ = "train:train"
    epochs: Positive = 8
    #: train with the search's plan where the search found one
    use_searched_plan: bool = True
    when: When = "always"


class BuildSpec(Strict):
    #: None: the first estimated memory style that fits, else the search's plan
    memory_style: Optional[str] = None
    lanes: Union[Positive, Literal["auto"]] = 1
    when: When = "always"

    @field_validator("memory_style")
    @classmethod
    def _style(cls, v):
        if v is not None and v not in MEMORY_CHOICES:
            raise ValueError(f"memory style '{v}' is not one of {', '.join(MEMORY_CHOICES)}")
        return v


class SimulateSpec(Strict):
    #: test windows simulated, evenly spaced (None: the whole test set)
    windows: Optional[Positive] = 256
    when: When = "always"


class SynthSpec(Strict):
    when: When = "always"
    #: synthesise only these seeds' designs (None: every seed's); a seed changes the weights in the ROMs,
    #: hardly the resources, and a large design takes minutes
    seeds: Optional[list[int]] = None


class Study(Strict):
    name: Annotated[str, Field(pattern=r"^[\w.-]+$")]
    model: ModelSpec
    data: DataSpec
    #: each key a list of values: every combination is a configuration
    grid: dict[str, list] = {}
    #: further configurations, each a mapping of values (added after the grid's)
    configs: list[dict[str, Any]] = []
    seeds: list[int] = [0]
    stages: list[Literal[STAGES]]
    #: the device and limits; a configuration value `device` overrides the device
    budget: Budget = Budget()
    #: the content-addressed store (relative to the study file); default: the --store option, else
    #: $QONNX_SPARTAN_STORE, else ~/.cache/qonnx-spartan/store
    store: Optional[Path] = None
    estimate: EstimateSpec = EstimateSpec()
    search: SearchSpec = SearchSpec()
    train: TrainSpec = TrainSpec()
    build: BuildSpec = BuildSpec()
    simulate: SimulateSpec = SimulateSpec()
    synth: SynthSpec = SynthSpec()

    @field_validator("grid")
    @classmethod
    def _grid(cls, v):
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid key '{key}' has no values")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError("seeds are one or more different numbers")
        return v

    def problems(self) -> list[tuple[str, str]]:
        """What the fields say that does not hold together, as (field, message)."""
        found, stages = [], set(self.stages)
        for stage in self.stages:
            found += [("stages", f"stage '{stage}' needs stage '{n}'") for n in NEEDS.get(stage, ()) if n not in stages]
        for stage in ("search", "train", "build", "simulate", "synth"):
            when = getattr(self, stage).when
            if stage in stages and when != "always" and "estimate" not in stages:
                found.append((f"{stage}.when", f"'{when}' is judged on the estimate: add 'estimate' to stages"))
        if "build" in stages and self.build.memory_style is None and "estimate" not in stages:
            found.append(("build.memory_style", "needed without the estimate stage, which otherwise picks it"))
        for k, config in enumerate(self.configurations()):
            if config.get("device", self.budget.device) not in DEVICES:
                found.append((f"configuration {k} device", f"unknown device (known: {', '.join(DEVICES)})"))
        if not self.configurations():
            found.append(("grid", "no configurations: give a grid or configs"))
        return found

    def configurations(self) -> list[dict]:
        """The grid's combinations, then the listed configurations, each once."""
        keys = list(self.grid)
        configs = [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())] if keys else []
        for c in self.configs:
            if c not in configs:
                configs.append(dict(c))
        return configs

    def budget_for(self, config: dict) -> Budget:
        device = config.get("device", self.budget.device)
        return self.budget.model_copy(update={"device": device}) if device != self.budget.device else self.budget


def load_study(path: Path) -> Study:
    """Read and check a study file; paths in it become absolute (relative to the file)."""
    path = Path(path)
    data = read_config(path, "study")
    study = validated(Study, data, path, "study", "name, model, data, grid, stages, ...")
    for field, message in study.problems():
        raise SpartanError(f"{path}: field '{field}': {message}")
    here = path.resolve().parent
    model = study.model.model_copy(update={"paths": [(here / p).resolve() for p in study.model.paths]})
    study = study.model_copy(update={"model": model, "store": here / study.store if study.store else None})
    if study.budget.estimator is not None:
        try:
            budget = study.budget.with_estimator((here / study.budget.estimator).resolve())
        except SpartanError as e:
            raise SpartanError(f"{path}: field 'budget.estimator': {e}") from None
        study = study.model_copy(update={"budget": budget})
    for field, ref in callables(study).items():
        check_callable(path, field, ref, model.paths)
    return study


def callables(study: Study) -> dict[str, str]:
    """The study's user callables by field, those its stages call."""
    refs = {"model.build": study.model.build, "data.load": study.data.load}
    if "train" in study.stages:
        refs["train.function"] = study.train.function
    return refs


def module_file(ref: str, paths: list[Path]) -> Path | None:
    """The source file of a "module:function" reference's module, found without running it."""
    module = ref.split(":")[0]
    added = [str(p) for p in paths if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    finally:
        for p in added:
            sys.path.remove(p)
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def check_callable(path: Path, field: str, ref: str, paths: list[Path]) -> None:
    """A reference names a module on the paths and a function defined at its top level."""
    source = module_file(ref, paths)
    where = f"{path}: field '{field}'"
    if source is None:
        searched = ", ".join(map(str, paths)) or "sys.path"
        raise SpartanError(f"{where}: no module '{ref.split(':')[0]}' (searched {searched}; see model.paths)")
    name = ref.split(":")[1]
    tree = ast.parse(source.read_text(), str(source))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    if name not in defined:
        raise SpartanError(f"{where}: module {source} defines no '{name}'")
