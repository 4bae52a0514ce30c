"""The stages of a study, one function each, and `run_stage`, the one Dask task that runs any of them.

A stage function gets the folder its store entry is being made in, the study, the configuration, the seed
and the results of the stages it reads (each with "entry", its folder in the store), writes its files into
the folder and returns its result as a JSON-able dict.  `run_stage` reuses a finished entry, skips a
conditional stage whose condition does not hold, and records a SpartanError (a design that does not fit, a
search that finds no plan) as the stage's result: it is as much a finding as a number is.
"""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
import sys
import tempfile
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.study.spec import NEEDS, Study
from qonnx_spartan.study.store import ALTERNATIVE, Store

MODEL = "model.onnx"
#: The key of a result saying why a stage did not run (its condition, or an input that is missing).
SKIPPED = "skipped"


def user_callable(ref: str, paths: list) -> object:
    """The function a "module:function" reference names, its module imported with `paths` on sys.path."""
    for p in reversed([str(p) for p in paths]):
        if p not in sys.path:
            sys.path.insert(0, p)
    module, name = ref.split(":")
    with warnings.catch_warnings():  # brevitas names an optional kernel package on import, on every worker
        warnings.filterwarnings("ignore", message="fast_hadamard_transform")
        return getattr(importlib.import_module(module), name)


def accepted(fn, values: dict) -> dict:
    """The values fn's signature names (all of them if it takes **kwargs)."""
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in values.items() if takes_all or k in params}


def call_with(fn, values: dict, **fixed):
    """Call fn with the values its signature names, and `fixed`."""
    return fn(**{k: v for k, v in accepted(fn, values).items() if k not in fixed}, **fixed)


def model_values(study: Study, config: dict) -> dict:
    return {**study.model.params, **config}


@lru_cache(maxsize=8)
def _dataset(ref: str, paths: tuple, values: tuple):
    return user_callable(ref, list(paths))(**dict(values))


def dataset(study: Study, config: dict):
    """The configuration's data set, loaded once per worker process for the values the loader takes."""
    load = user_callable(study.data.load, study.model.paths)
    values = accepted(load, {**study.data.params, **config})
    return _dataset(study.data.load, tuple(map(str, study.model.paths)), tuple(sorted(values.items(), key=str)))


def one_thread():
    """torch with one thread: a worker is one of several processes on the cores, and torch's own thread pool
    in each (one thread per core) makes them wait on each other; measured here, exports 6 times slower with
    two workers on two cores.  (The example's training does the same.)"""
    import torch

    torch.set_num_threads(1)
    return torch


def export_onnx(model, path: Path, input_shape: tuple) -> None:
    """QONNX export with the TorchScript exporter: torch's default (dynamo) silently drops the Quant nodes."""
    import torch
    from brevitas.export import export_qonnx

    model.eval()
    export_qonnx(model, torch.randn(1, *input_shape), export_path=str(path), dynamo=False)


def export(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """The untrained model (seed 0), its activation ranges calibrated by Brevitas in train mode on training
    windows, exported to QONNX: resources depend on the widths and the ranges, hardly on trained weights."""
    torch = one_thread()

    torch.manual_seed(0)
    build = user_callable(study.model.build, study.model.paths)
    model = call_with(build, model_values(study, config))
    x = torch.from_numpy(np.asarray(dataset(study, config).train.x))
    pick = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(study.data.calibration_batches):
            model(x[torch.randint(len(x), (study.data.calibration_batch,), generator=pick)])
    export_onnx(model, folder / MODEL, tuple(x.shape[1:]))
    return {"model": MODEL, "input_shape": list(x.shape[1:])}


def over(report: dict) -> str:
    """The overflowing resources, the most over (relative to its limit) first."""
    items = sorted(report["overflows"].items(), key=lambda kv: -kv[1]["used"] / max(kv[1]["limit"], 1))
    return ", ".join(r for r, _ in items)


def estimate(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """The exported model estimated with each memory style of the study, in its order."""
    from qonnx_spartan.flow import BuildConfig, estimate_only

    budget = study.budget_for(config)
    styles = {}
    for style in study.estimate.memory_styles:
        cfg = BuildConfig(
            model=Path(up["export"]["entry"]) / MODEL,
            output_dir=Path("unused"),
            budget=budget,
            memory_style=style,
            lanes=study.estimate.lanes,
        )
        report = estimate_only(cfg)
        styles[style] = {
            "total": report["total"],
            "cycles": report["cycles"],
            "fits": report["fits"],
            "over": over(report),
        }
    first = styles[study.estimate.memory_styles[0]]
    return {"styles": styles, "cycles": first["cycles"], "latency_us": first["cycles"] / budget.clock_mhz}


def holds(when: str, up: dict) -> bool:
    """Whether a stage's `when` holds for the estimate (and the search's result, where it ran)."""
    if when == "always":
        return True
    styles = list(up["estimate"]["styles"].values())
    searched = bool((up.get("search") or {}).get("fits"))
    fitting = [s["fits"] for s in styles]
    return {
        "unfit": not any(fitting),
        "fits": any(fitting) or searched,
        "made_deployable": not fitting[0] and (any(fitting[1:]) or searched),
    }[when]


def integer_reference(model_path: Path, x: np.ndarray) -> np.ndarray:
    """The lowered model's dequantised outputs for float inputs x."""
    from qonnx_spartan.hostio import HostIO
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.reference import run_reference
    from qonnx_spartan.transforms import LowerToIntegerOps, Tidy

    model = load_model(model_path).transform(Tidy()).transform(LowerToIntegerOps())
    io = HostIO.load(model)
    return io.output.dequantize(run_reference(model, io.batch(x, "study windows")))


def evenly(x: np.ndarray, n: int | None) -> np.ndarray:
    """n rows of x evenly spaced over it (all of them for None)."""
    return x if n is None or n >= len(x) else x[np.linspace(0, len(x) - 1, n).astype(int)]


def search(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """The plan of least error that fits, against the exported model's own integer outputs on validation
    windows: the error is the plan's distance from the configuration's uniform widths, in output LSBs."""
    from qonnx_spartan.search import search as run_search
    from qonnx_spartan.search import write_outputs

    onnx = Path(up["export"]["entry"]) / MODEL
    x = evenly(np.asarray(dataset(study, config).val.x), study.search.calib_windows)
    try:
        result = run_search(
            onnx, study.budget_for(config), x, integer_reference(onnx, x), study.search.bits, study.search.points
        )
    except SpartanError as e:
        return {"fits": False, "error": str(e)}
    write_outputs(result, folder / "plan.json")
    best, s = result.best, result.search
    return {
        "fits": True,
        "total": best.totals,
        "cycles": best.cycles,
        "rms_lsb": s.rms_lsb(best.mse),
        "widths": dict(zip(s.keys, best.bits)),
        "plan": result.plan.to_json(),
        "bit_widths": result.plan.bit_widths(),
    }


def train_float(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """The float model of the configuration (its quant-only values left out), trained once for all of them."""
    torch = one_thread()

    train = user_callable(study.train.function, study.model.paths)
    data = dataset(study, config)
    values = model_values(study, config)
    model, metrics = call_with(train, values, seed=seed, epochs=study.train.epochs, quant=False, data=data)
    # the QAT stage rebuilds the model from its state (the builder with quant=False gives the same modules)
    torch.save(model.state_dict(), folder / "float.pt")
    persistence = data.persistence_rmse("test") if hasattr(data, "persistence_rmse") else None
    return {
        "rmse_float": metrics["test_rmse"],
        "rmse_persistence": persistence,
        "seconds_train": metrics.get("train_seconds"),
    }


def train(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """QAT from the float model's weights, with the search's widths where it found a plan; the trained model
    exported to QONNX for the hardware stages of this seed."""
    torch = one_thread()

    fn = user_callable(study.train.function, study.model.paths)
    build = user_callable(study.model.build, study.model.paths)
    data = dataset(study, config)
    values = model_values(study, config)
    float_model = call_with(build, values, quant=False)
    float_model.load_state_dict(torch.load(Path(up["train_float"]["entry"]) / "float.pt"))
    searched = up.get("search") or {}
    plan = searched.get("bit_widths") if study.train.use_searched_plan and searched.get("fits") else None
    fixed = dict(seed=seed, epochs=study.train.epochs, quant=True, init_from=float_model, data=data)
    model, metrics = call_with(fn, values, plan=plan, **fixed) if plan else call_with(fn, values, **fixed)
    export_onnx(model, folder / MODEL, tuple(np.asarray(data.train.x).shape[1:]))
    return {
        "model": MODEL,
        "rmse_qat": metrics["test_rmse"],
        "plan": "searched" if plan else None,
        "seconds_qat": metrics.get("train_seconds"),
    }


def build(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """The design: with build.memory_style if given, else the first estimated style that fits, else the
    search's plan; from the trained model where this seed was trained."""
    from qonnx_spartan.flow import BuildConfig
    from qonnx_spartan.flow import build as run_build
    from qonnx_spartan.plan import Plan

    source = up.get("train") if (up.get("train") or {}).get("model") else up["export"]
    plan, style = None, study.build.memory_style
    if style is None:
        fitting = [s for s, r in up["estimate"]["styles"].items() if r["fits"]]
        if fitting:
            style = fitting[0]
        elif (up.get("search") or {}).get("fits"):
            plan = Plan.model_validate(up["search"]["plan"])
        else:
            return {"error": "no estimated memory style fits and no search found a plan"}
    cfg = BuildConfig(
        model=Path(source["entry"]) / MODEL,
        output_dir=folder / "build",
        budget=study.budget_for(config),
        plan=plan,
        memory_style=style or "auto",
        lanes=study.build.lanes,
    )
    run_build(cfg)
    report = json.loads((folder / "build" / "report" / "estimate.json").read_text())
    return {
        "strategy": "search" if plan is not None else style,
        "trained": source is not up["export"],
        "total": report["total"],
        "cycles": report["cycles"],
        "fits": report["fits"],
    }


def simulate(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """GHDL over evenly spaced test windows, bit-exact against the integer reference; RMSE of both in the
    data's units."""
    from qonnx_spartan.simulation import simulate_build

    data = dataset(study, config)
    test = data.test
    keep = evenly(np.arange(len(test.x)), study.simulate.windows)
    x, y = np.asarray(test.x)[keep], np.asarray(test.y)[keep]
    report = simulate_build(Path(up["build"]["entry"]) / "build", x, source="test windows")
    io = report.io

    def rmse(q):
        pred = io.output.dequantize(q).reshape(len(x))
        return float(np.sqrt(np.mean((data.denormalise(pred) - data.denormalise(y)) ** 2)))

    return {
        "windows": len(x),
        "bit_exact": report.bit_exact,
        "cycles": report.cycles_per_inference,
        "rmse_integer": rmse(report.reference),
        "rmse_hardware": rmse(report.hardware),
    }


def synth(folder: Path, study: Study, config: dict, seed, up: dict) -> dict:
    """GHDL + yosys synthesis of a copy of the build (the stored build stays as it was)."""
    from qonnx_spartan.synth import synthesise

    with tempfile.TemporaryDirectory(prefix="qs_study_synth_") as tmp:
        copy = Path(tmp) / "build"
        shutil.copytree(Path(up["build"]["entry"]) / "build", copy)
        report = synthesise(copy)
    caps = study.budget_for(config).profile.capacities()
    overflow = [r for r in caps if report["total"][r] > caps[r]]
    return {
        "total": report["total"],
        "tool_seconds": report["seconds"],
        "fits": not overflow,
        "over": ", ".join(overflow),
    }


STAGE_FUNCTIONS = {
    "export": export,
    "estimate": estimate,
    "search": search,
    "train_float": train_float,
    "train": train,
    "build": build,
    "simulate": simulate,
    "synth": synth,
}
#: The upstream results without which a stage cannot run (the others are optional inputs).
REQUIRED = {**NEEDS, "train": ("train_float",)}

#: The study section whose `when` decides whether a stage runs (the float model is trained for the QAT one).
CONDITION = {s: s for s in ("search", "train", "build", "simulate", "synth")} | {"train_float": "train"}


def alternatives(up: dict) -> list[dict]:
    """The results a stage's condition is judged on: one set per configuration sharing the stage (store.ALTERNATIVE)."""
    sets: dict[str, dict] = {}
    for name, result in up.items():
        stage, _, n = name.partition(ALTERNATIVE)
        sets.setdefault(n, {})[stage] = result
    return list(sets.values())


def unusable(result: dict | None) -> bool:
    return result is None or SKIPPED in result or "error" in result


def run_stage(stage: str, store_root: str, key: str, study_json: dict, config: dict, seed, up: dict) -> dict:
    """One stage of one configuration (and seed): the stored result if there is one, else computed and
    stored.  The returned dict carries "entry" (its folder) and "reused"."""
    study = Study.model_validate(study_json)
    when = getattr(study, CONDITION[stage]).when if stage in CONDITION else "always"
    if when != "always":
        judged = [a for a in alternatives(up) if not unusable(a.get("estimate"))]
        if not judged:
            return {SKIPPED: f"{stage}.when is {when}, and there is no estimate"}
        if not any(holds(when, a) for a in judged):
            return {SKIPPED: f"{stage}.when is {when}"}
    chosen = getattr(getattr(study, stage, None), "seeds", None)
    if chosen is not None and seed is not None and seed not in chosen:
        return {SKIPPED: f"{stage}.seeds is {chosen}"}
    if "train" in study.stages and stage == "build" and unusable(up.get("train")):
        return {SKIPPED: "no train"}  # a seed's design is the trained model's, never the untrained export
    for need in REQUIRED.get(stage, ()):
        if unusable(up.get(need)):
            return {SKIPPED: f"no {need}"}
    store = Store(Path(store_root))
    found = store.get(stage, key)
    if found is not None:
        return {**found, "entry": str(store.entry(stage, key)), "reused": True}

    def make(folder: Path) -> dict:
        started = time.perf_counter()
        try:
            result = STAGE_FUNCTIONS[stage](folder, study, config, seed, up)
        except SpartanError as e:
            result = {"error": str(e)}
        return {**result, "seconds": round(time.perf_counter() - started, 2)}

    result = store.put(stage, key, make)
    return {**result, "entry": str(store.entry(stage, key)), "reused": False}
