"""The embedded default: `qonnx-spartan build` and `simulate` work out of the box on the packaged model."""

from __future__ import annotations

import json

from qonnx_spartan import embedded
from qonnx_spartan.cli import main


def test_embedded_model_builds_and_simulates_bit_exact(tmp_path, capsys, ghdl):
    info = embedded.info()
    assert embedded.model_path().is_file() and embedded.inputs_path().is_file()
    assert info["test_rmse_gw"]["qat"] < info["test_rmse_gw"]["persistence"]  # the model learnt something

    out = tmp_path / "build"
    assert main(["build", "-o", str(out)]) == 0
    assert main(["simulate", str(out), "--output", str(tmp_path / "y.npy")]) == 0
    report = json.loads((out / "report" / "sim.json").read_text())
    assert report["bit_exact"] and report["vectors"] == 32
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    assert estimate["fits"] and estimate["device"] == "xc7s15"
    assert report["cycles_per_inference"] == estimate["cycles"]
    assert "embedded example" in capsys.readouterr().err


def test_embedded_model_keeps_its_accuracy_on_the_whole_test_set(brevitas):
    """The integer reference (which the hardware equals bit for bit) over the whole elecdemand test set:
    its RMSE within 2 % of the QAT Brevitas model's, and well below persistence."""
    import numpy as np
    from data import make_dataset

    from qonnx_spartan.hostio import HostIO
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.reference import run_reference
    from qonnx_spartan.transforms import LowerToIntegerOps, Tidy

    info = embedded.info()
    data = make_dataset(info["config"]["window"])
    model = load_model(embedded.model_path()).transform(Tidy()).transform(LowerToIntegerOps())
    io = HostIO.load(model)
    y = io.output.dequantize(run_reference(model, io.batch(data.test.x, "test set"))).ravel()
    rmse = float(np.sqrt(np.mean((data.denormalise(y) - data.denormalise(data.test.y)) ** 2)))
    rmse_gw = info["test_rmse_gw"]
    assert abs(rmse / rmse_gw["qat"] - 1) <= 0.02, (rmse, rmse_gw)
    assert rmse < 0.8 * rmse_gw["persistence"]
