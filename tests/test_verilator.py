"""The compiled simulator against GHDL: the same outputs and cycle counts on an MLP and on the forecasting
Transformer (buffers and weights in block RAM and in LUTs), a broken design caught by both, the program
compiled once per design, and a clear error without Verilator."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from brevitas_models import export, make_mlp
from cli_errors import cli_error
from test_transformer import calibrated_forecaster, export_forecaster

from qonnx_spartan import verilator as compiled
from qonnx_spartan.budget import Budget
from qonnx_spartan.cli import main
from qonnx_spartan.design import Design
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.simulation import default_simulator, simulate_build

pytestmark = pytest.mark.verilator


def both(out, x, status=None):
    """GHDL's and Verilator's reports on the same inputs, checked to agree on every output and cycle."""
    reports = [simulate_build(out, x, simulator="ghdl"), simulate_build(out, x, simulator="verilator", status=status)]
    assert [r.simulator for r in reports] == ["ghdl", "verilator"]
    assert np.array_equal(reports[0].hardware, reports[1].hardware)
    assert reports[0].cycles_per_inference == reports[1].cycles_per_inference
    return reports


@pytest.mark.parametrize("style", ["block", "distributed"])
def test_mlp_same_in_both_simulators(tmp_path, style, ghdl, verilator, brevitas):
    sizes = [6, 16, 12, 2]
    onnx_path = export(make_mlp(sizes, 6, bias=True, out_quant=False, seed=3), tmp_path / "mlp.onnx", (1, sizes[0]))
    lowered = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "b", memory_style=style))
    x = (np.random.default_rng(3).normal(size=(40, sizes[0])) * 2).astype(np.float32)
    x[0], x[1] = 1e3, -1e3  # saturate the input quantiser both ways
    for report in both(tmp_path / "b", x):
        assert report.bit_exact, report.simulator
        assert report.cycles_per_inference == Design(lowered).cycles()


@pytest.mark.parametrize(
    "heads,bits,po2,style", [(2, 6, True, "block"), (1, 8, False, "distributed")], ids=["6bit-bram", "8bit-lutram"]
)
def test_transformer_same_in_both_simulators(tmp_path, heads, bits, po2, style, ghdl, verilator, brevitas):
    onnx_path = export_forecaster(calibrated_forecaster(4, 8, heads, bits, po2=po2), tmp_path / "tf.onnx", 4)
    config = BuildConfig(model=onnx_path, output_dir=tmp_path / "b", memory_style=style, budget=Budget(device="xc7s50"))
    lowered = build(config)
    x = np.random.default_rng(bits).normal(size=(12, 4, 3)).astype(np.float32)
    for report in both(tmp_path / "b", x):
        assert report.bit_exact, report.simulator
        assert report.cycles_per_inference == Design(lowered).cycles()


def test_a_broken_weight_fails_in_both_and_the_program_is_compiled_again(tmp_path, ghdl, verilator, brevitas):
    sizes = [4, 8, 3]
    onnx_path = export(make_mlp(sizes, 8, seed=1), tmp_path / "mlp.onnx", (1, sizes[0]))
    out = tmp_path / "b"
    build(BuildConfig(model=onnx_path, output_dir=out, memory_style="block"))
    x = np.random.default_rng(1).normal(size=(40, sizes[0])).astype(np.float32)
    compiles = []
    assert simulate_build(out, x, simulator="verilator", status=compiles.append).bit_exact
    assert simulate_build(out, x, simulator="verilator", status=compiles.append).bit_exact
    assert len(compiles) == 1  # kept in the build and reused

    rom = next((out / "hdl").glob("*_w_rom.vhd"))
    text = rom.read_text()
    word = re.search(r'0 => "([01]+)"', text)
    flipped = ("0" if word.group(1)[0] == "1" else "1") + word.group(1)[1:]  # the top bit of a weight
    rom.write_text(text[: word.start(1)] + flipped + text[word.end(1) :])
    broken = both(out, x, status=compiles.append)
    assert len(compiles) == 2  # the changed VHDL was compiled again
    assert all(r.mismatches > 0 for r in broken), [r.mismatches for r in broken]


def test_without_verilator_a_one_line_error_and_ghdl_by_default(tmp_path, capsys, monkeypatch, ghdl):
    out = tmp_path / "b"
    assert main(["build", "-o", str(out)]) == 0
    monkeypatch.setattr(compiled, "verilator_path", lambda: None)
    assert default_simulator() == "ghdl"  # the function itself, imported before conftest.py patches it
    msg = cli_error(capsys, "simulate", out, "--simulator", "verilator")
    assert "Verilator is not installed" in msg and "apt-get install verilator" in msg
    assert main(["simulate", str(out)]) == 0
    assert json.loads((out / "report" / "sim.json").read_text())["simulator"] == "ghdl"
