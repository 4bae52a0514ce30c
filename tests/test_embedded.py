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
