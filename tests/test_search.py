"""The mixed-precision search on the embedded Transformer (and a Brevitas MLP with float scales): under a
budget the 8-bit model does not fit it finds a plan that fits by the flow's own estimate, with no more error
than any uniform narrower model that fits; the plan builds; an impossible budget or bad arguments are one
line.  Limits come from estimates made here, never from numbers written down (the estimator's coefficients
are being recalibrated)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_errors import one_line_error, run_cli

from qonnx_spartan import embedded
from qonnx_spartan.budget import Budget, Caps
from qonnx_spartan.cli import main
from qonnx_spartan.flow import BuildConfig, estimate_only
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.plan import Plan, load_plan
from qonnx_spartan.reference import run_reference
from qonnx_spartan.search import quantised_layers, search, search_plot
from qonnx_spartan.transforms import AnnotateBitwidths, LowerToIntegerOps, Tidy

MODEL = embedded.model_path()


def uniform(bits: int, model: Path = MODEL) -> Plan:
    fields = quantised_layers(load_model(model).transform(Tidy()))
    return Plan.model_validate({key: {f: bits for f in used} for key, used in fields.items()})


def outputs(plan: Plan | None, x: np.ndarray, model: Path = MODEL) -> np.ndarray:
    """Dequantised outputs of the integer reference, lowered in the flow's order (widths, tidy, lower)."""
    model = load_model(model)
    if plan is not None:
        model = model.transform(AnnotateBitwidths(plan))
    model = model.transform(Tidy()).transform(LowerToIntegerOps())
    io = HostIO.load(model)
    return io.output.dequantize(run_reference(model, io.batch(x, "x")))


def flow_estimate(budget, plan: Plan | Path | None, memory_style: str = "budget", model: Path = MODEL) -> dict:
    cfg = BuildConfig(model=model, output_dir=Path("."), budget=budget, plan=plan, lanes=1, memory_style=memory_style)
    return estimate_only(cfg)


def halfway(model: Path) -> int:
    """A LUT limit between the uniform 4-bit and 8-bit models with every memory in LUTs."""
    lut4, lut8 = (flow_estimate(None, uniform(b, model), "distributed", model)["total"]["LUT"] for b in (4, 8))
    assert lut4 < lut8
    return (lut4 + lut8) // 2


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def check_plan(model: Path, budget, plan: Plan, chosen: dict, x: np.ndarray, y: np.ndarray) -> None:
    """The plan fits by the flow's estimate, which equals the search's; its error is the reported one and no
    larger than that of any uniform narrower plan that fits (with the flow's own memory placement)."""
    assert not flow_estimate(budget, uniform(8, model), model=model)["fits"]
    report = flow_estimate(budget, plan, model=model)
    assert report["fits"], report["overflows"]
    assert report["total"] == chosen["resources"]
    error = rms(outputs(plan, x, model), y)
    assert error == pytest.approx(chosen["rms"])
    fitting = [b for b in (6, 4) if flow_estimate(budget, uniform(b, model), model=model)["fits"]]
    assert fitting, "the test budget should admit a uniform narrower model"
    assert all(error <= rms(outputs(uniform(b, model), x, model), y) for b in fitting)
    assert min(chosen["widths"].values()) < 8


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Calibration inputs (the embedded test windows), the 8-bit integer reference as the reference outputs,
    and a budget the 8-bit model cannot meet: no block RAM, LUTs halfway between the 4-bit and 8-bit models."""
    folder = tmp_path_factory.mktemp("search")
    x = np.load(embedded.inputs_path())
    y = outputs(None, x)
    np.save(folder / "calib.npy", x)
    np.save(folder / "reference.npy", y)
    budget = folder / "budget.yaml"
    budget.write_text(f"device: xc7s15\ncaps: {{LUT: {halfway(MODEL)}, BRAM18: 0}}\n")
    return {"folder": folder, "x": x, "y": y, "budget": budget}


@pytest.fixture(scope="module")
def searched(data) -> dict:
    plan = data["folder"] / "plan.json"
    argv = ["search", MODEL, "--budget", data["budget"], "--calib", data["folder"] / "calib.npy"]
    argv += ["--reference", data["folder"] / "reference.npy", "-o", plan, "--points", "3"]
    assert main([str(a) for a in argv]) == 0
    return {"plan": plan, "pareto": json.loads((data["folder"] / "plan.pareto.json").read_text())}


def test_the_plan_fits_where_8_bits_do_not_and_beats_every_uniform_plan_that_fits(data, searched):
    check_plan(MODEL, data["budget"], load_plan(searched["plan"]), searched["pareto"]["chosen"], data["x"], data["y"])


def test_a_brevitas_mlp_with_float_scales(brevitas, tmp_path):
    from brevitas_models import export, make_mlp

    sizes = [6, 16, 12, 2]
    model = export(make_mlp(sizes, 8, out_quant=True, seed=1), tmp_path / "mlp.onnx", (1, sizes[0]))
    x = np.random.default_rng(0).normal(size=(64, sizes[0])).astype(np.float32) * 1.5
    y = outputs(None, x, model)
    budget = Budget(caps=Caps(LUT=halfway(model), BRAM18=0))
    result = search(model, budget, x, y, points=2)
    check_plan(model, budget, result.plan, result.to_json()["chosen"], x, y)


def test_the_pareto_front_is_written(data, searched):
    doc = searched["pareto"]
    points = doc["points"]
    assert len(points) >= 2 and points[-1] == doc["chosen"]
    assert all(a["budget_fraction"] < b["budget_fraction"] and a["rms"] > b["rms"] for a, b in zip(points, points[1:]))
    assert all(p["resources"]["BRAM18"] == 0 for p in points)  # the budget's cap, scaled
    assert set(doc["sensitivity_rms_lsb"]) == set(doc["chosen"]["widths"])
    assert (data["folder"] / "plan.pareto.png").is_file() == search_plot.available()


def test_the_plan_builds(capsys, data, searched, tmp_path):
    out = tmp_path / "build"
    argv = ["build", MODEL, "--budget", data["budget"], "--plan", searched["plan"], "-o", out, "--lanes", 1]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    built = json.loads((out / "report" / "estimate.json").read_text())["total"]
    assert built == searched["pareto"]["chosen"]["resources"]


def test_an_impossible_budget_is_one_line_naming_what_binds(capsys, data, tmp_path):
    dsp4 = flow_estimate(None, uniform(4))["total"]["DSP"]
    assert dsp4 > 0
    budget = tmp_path / "tiny.yaml"
    budget.write_text(f"caps: {{DSP: {dsp4 - 1}}}\n")
    plan = tmp_path / "plan.json"
    argv = ["search", MODEL, "--budget", budget, "--calib", data["folder"] / "calib.npy"]
    msg = one_line_error(*run_cli(capsys, *argv, "--reference", data["folder"] / "reference.npy", "-o", plan)[::2])
    assert f"no plan with widths 4, 6, 8 fits xc7s15 (DSP {dsp4 - 1}): the smallest reachable is DSP {dsp4}" in msg
    assert "all layers at 4 bits" in msg and msg.endswith("binding: DSP")
    assert list(tmp_path.iterdir()) == [budget]


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--bits", "4,9"], "--bits: '9' is not a whole number from 2 to 8"),
        (["--bits", "four"], "--bits: 'four' is not a whole number"),
        (["--bits", "4,,8"], "--bits: '' is not a whole number"),
        (["--bits", "1"], "--bits: '1' is not a whole number from 2 to 8"),
        (["--reference", "short.npy"], "short.npy: 5 rows, but one row of finite numbers per calibration input (32)"),
        (["--reference", "calib.npy"], "calib.npy: 18 values per input, but the model gives 1"),
        (["--calib", "missing.npy"], "missing.npy: input file not found"),
    ],
)
def test_bad_arguments_are_one_line(capsys, data, tmp_path, args, expect):
    folder = data["folder"]
    np.save(folder / "short.npy", data["y"][:5])
    given = {"--calib": "calib.npy", "--reference": "reference.npy", "--bits": "4,8"}
    given.update(zip(args[::2], args[1::2]))
    plan = tmp_path / "plan.json"
    argv = ["search", MODEL, "-o", plan, "--bits", given["--bits"]]
    argv += ["--calib", folder / given["--calib"], "--reference", folder / given["--reference"]]
    msg = one_line_error(*run_cli(capsys, *argv)[::2])
    assert expect in msg, msg
    assert not any(tmp_path.iterdir())
