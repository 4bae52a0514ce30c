"""Calibration: reading synthesis counts per layer (yosys and Vivado) and fitting the coefficients."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qonnx_spartan.calibration import build_rows, fit, vivado_instances, vivado_layers
from qonnx_spartan.coefficients import Coefficients
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import coefficient_groups

# The shape of Vivado 2023's `report_utilization -hierarchical` (header lines, the table, own-logic rows).
VIVADO_REPORT = """\
Copyright 1986-2023 Xilinx, Inc. All Rights Reserved.
---------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2023.2 (lin64) Build 4029153 Fri Oct 13 20:13:54 MDT 2023
| Design       : qs_top
| Device       : xc7s15ftgb196-2
| Design State : Routed
---------------------------------------------------------------------------------------------------

Utilization Design Information

1. Utilization by Hierarchy
---------------------------

+-------------------+-----------------+------------+------------+---------+------+-----+--------+--------+------------+
|      Instance     |      Module     | Total LUTs | Logic LUTs | LUTRAMs | SRLs | FFs | RAMB36 | RAMB18 | DSP Blocks |
+-------------------+-----------------+------------+------------+---------+------+-----+--------+--------+------------+
| qs_top            |           (top) |        420 |        380 |      36 |    4 | 300 |      1 |      1 |          3 |
|   (qs_top)        |           (top) |         20 |         20 |       0 |    0 |  15 |      0 |      0 |          0 |
|   buf_in          |          qs_ram |         12 |          0 |      12 |    0 |   6 |      0 |      0 |          0 |
|   buf_l0_a        | qs_ram__param0  |         16 |          0 |      16 |    0 |   8 |      0 |      0 |          0 |
|   buf_l1_b        | qs_ram__param1  |          8 |          0 |       8 |    0 |   4 |      0 |      1 |          0 |
|   u_l0_a          |            l0_a |        200 |        196 |       0 |    4 | 150 |      1 |      0 |          2 |
|     weights       |     l0_a_w_rom  |          0 |          0 |       0 |    0 |   0 |      1 |      0 |          0 |
|   u_l1_b          |            l1_b |        164 |        164 |       0 |    0 | 117 |      0 |      0 |          1 |
+-------------------+-----------------+------------+------------+---------+------+-----+--------+--------+------------+
"""
NAMES = {
    "input_buffer": "buf_in",
    "layers": {
        "a": {"entity": "l0_a", "instance": "u_l0_a", "output_buffer": "buf_l0_a", "roms": {"w": "l0_a_w_rom"}},
        "b": {"entity": "l1_b", "instance": "u_l1_b", "output_buffer": "buf_l1_b", "roms": {}},
    },
}


def test_vivado_hierarchy_is_read_per_instance():
    instances = vivado_instances(VIVADO_REPORT, "report")
    assert instances[""] == {"LUT": 420, "LUTRAM": 40, "FF": 300, "BRAM18": 3, "DSP": 3}
    assert instances["u_l0_a/weights"]["BRAM18"] == 2  # a RAMB36 is two RAMB18
    assert instances["u_l0_a"]["LUTRAM"] == 4  # SRLs are LUTs of SLICEMs too
    assert "(qs_top)" not in instances and "u_l0_a/(u_l0_a)" not in instances


def test_vivado_layers_add_up_to_the_design(tmp_path):
    report = tmp_path / "utilization_hierarchical.rpt"
    report.write_text(VIVADO_REPORT)
    layers = vivado_layers(report, NAMES)
    assert layers["a"] == {"LUT": 216, "LUTRAM": 20, "FF": 158, "BRAM18": 2, "DSP": 2}
    assert layers["b"] == {"LUT": 172, "LUTRAM": 8, "FF": 121, "BRAM18": 1, "DSP": 1}
    assert layers["top"] == {"LUT": 32, "LUTRAM": 12, "FF": 21, "BRAM18": 0, "DSP": 0}


@pytest.mark.parametrize(
    "text,message",
    [
        ("nothing here\n", "no utilisation table"),
        (VIVADO_REPORT.replace("Total LUTs", "Total CLBs"), "no utilisation table"),
        (VIVADO_REPORT.replace("DSP Blocks", "Carry8    "), "no 'DSP48 Blocks' column"),
        (VIVADO_REPORT.replace("|        420 |", "|        4x0 |"), "unreadable utilisation row 'qs_top'"),
    ],
)
def test_bad_vivado_reports_are_named(text, message):
    with pytest.raises(SpartanError, match=message):
        vivado_instances(text, "report")


def test_vivado_report_without_a_layer_instance(tmp_path):
    report = tmp_path / "r.rpt"
    report.write_text(VIVADO_REPORT.replace("u_l1_b ", "u_other"))
    with pytest.raises(SpartanError, match="no instance 'u_l1_b' \\(layer 'b'\\)"):
        vivado_layers(report, NAMES)


def test_fit_recovers_known_weights():
    """Rows made from known weights give those weights back (the fit is exact on consistent data)."""
    rng = np.random.default_rng(0)
    true = {"mac": {"LUT": {"acc_bits": 1.5, "counter_bits": 2.0}, "FF": {"acc_bits": 1.0, "one": 12.0}}}
    rows = []
    for _ in range(30):
        features = {
            "mac": {"acc_bits": float(rng.integers(8, 40)), "counter_bits": float(rng.integers(1, 12)), "one": 1}
        }
        measured = Coefficients("t", true).apply("mac", features["mac"])
        rows.append({"features": features, "measured": measured})
    fitted = fit(rows, "synthetic")
    for row in rows:  # the measured counts are rounded: within one of them
        got = fitted.apply("mac", row["features"]["mac"])
        assert all(abs(got[r] - row["measured"][r]) <= 1 for r in ("LUT", "FF")), (got, row["measured"])
    assert fitted.groups["mac"]["LUT"]["acc_bits"] == pytest.approx(1.5, abs=0.02)
    assert fitted.fit["rows"] == 30


def test_coefficient_files_are_checked(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"tool": "x", "groups": {"mac": {"LUT": {"acc_bits": "many"}}}}))
    with pytest.raises(SpartanError, match="groups.mac.LUT.acc_bits"):
        Coefficients.load(bad)
    bad.write_text("{")
    with pytest.raises(SpartanError, match="not JSON"):
        Coefficients.load(bad)
    with pytest.raises(SpartanError, match="not found"):
        Coefficients.load(tmp_path / "missing.json")


def test_packaged_coefficients_cover_every_part():
    """Every coefficient group the estimator uses, those of every registered op included, has LUT and FF
    weights."""
    groups = Coefficients.default().groups
    assert {"linear", "matmul", "mean", "elementwise", "softmax"} < set(coefficient_groups())
    for group in coefficient_groups():
        assert groups[group]["LUT"] and groups[group]["FF"], group


def test_an_op_registered_without_coefficients_fails_loudly(monkeypatch):
    """An op whose coefficient group the coefficients lack is refused by name, never estimated at 0 LUT."""
    from single_op import lowered_model, tensor_io

    from qonnx_spartan import ops
    from qonnx_spartan.estimate import estimate
    from qonnx_spartan.intarith import IntType
    from qonnx_spartan.ops.elementwise import IntAffine

    class IntUncalibrated(IntAffine):
        resource_group = "uncalibrated"

    monkeypatch.setitem(ops.OPS, "IntUncalibrated", IntUncalibrated)
    monkeypatch.setattr(ops, "__all__", [*ops.__all__, "IntUncalibrated"])
    assert "uncalibrated" in coefficient_groups()
    int8 = IntType(True, 8)
    node = IntAffine.make_node("odd", "x", "y", int8, 1.0, 0.5, 0.0, int8, 1.0, int8.lo, int8.hi, [1, 4])
    node.op_type = "IntUncalibrated"
    model = lowered_model([node], tensor_io("x", [1, 4], int8), tensor_io("y", [1, 4], int8), {"y": int8})
    with pytest.raises(SpartanError, match="no group 'uncalibrated'"):
        estimate(model)


def test_a_fit_keeps_every_group_of_its_rows():
    """A group whose weights all fit to 0 stays in the coefficients (as costing nothing), so that estimating
    with them does not refuse a part the rows had."""
    rows = [
        {"features": {"busy": {"bits": float(b)}, "idle": {"one": 1.0}}, "measured": {"LUT": 2 * b, "FF": b}}
        for b in range(1, 6)
    ]
    fitted = fit(rows, "synthetic")
    assert fitted.apply("idle", {"one": 1.0}) == {"LUT": 0, "FF": 0}
    with pytest.raises(SpartanError, match="no group 'other'"):
        fitted.apply("other", {"one": 1.0})


def test_a_fit_keeping_groups_fits_only_the_others():
    """`calibrate --keep`: the kept groups' weights come back unchanged, the new group is fitted to what they
    leave of each row, so a new op is calibrated without moving an existing estimate."""
    kept = Coefficients("t", {"memory": {"LUT": {"bits": 1.0}, "FF": {"bits": 1.0}}}, {"rows": 9})
    rows = [
        {
            "features": {"memory": {"bits": float(b)}, "table": {"one": 1.0, "counter_bits": float(c)}},
            "measured": {"LUT": b + 3 + 2 * c, "FF": b + 5 + c},
        }
        for b, c in ((4, 1), (8, 3), (6, 5), (2, 2))
    ]
    fitted = fit(rows, "synthetic", keep=kept)
    assert fitted.groups["memory"] == kept.groups["memory"]
    assert fitted.groups["table"]["LUT"] == pytest.approx({"one": 3.0, "counter_bits": 2.0}, abs=1e-6)
    assert fitted.groups["table"]["FF"] == pytest.approx({"one": 5.0, "counter_bits": 1.0}, abs=1e-6)
    assert fitted.fit["rows"] == 9 and fitted.fit["added"]["table"]["rows"] == 4


def test_rows_of_a_synthesised_build(tmp_path, ghdl, yosys):
    """Rows of a real synthesis add up to its total, and their features give back the estimate."""
    from test_synth import wide_requant_layer

    from qonnx_spartan.estimate import estimate
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.synth import synthesise

    path = tmp_path / "m.onnx"
    wide_requant_layer(3, 4).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    report = synthesise(out)
    rows = build_rows(out)
    assert {r["layer"] for r in rows} == {"wide", "top"}
    for resource in ("LUT", "FF", "DSP"):
        assert sum(r["measured"][resource] for r in rows) == report["total"][resource]
    est = estimate(load_model(out / "model_int.onnx"))
    for row in rows:
        layer = est["layers"][row["layer"]]
        assert row["exact"]["DSP"] == layer["DSP"] == row["measured"]["DSP"]
        assert row["exact"]["BRAM18"] == layer["BRAM18"] == row["measured"]["BRAM18"]


def test_hardware_digests_follow_the_hardware(tmp_path):
    """`calibration/sweep.py --measured` takes recorded counts only for the hardware they were measured on:
    a layer's digest ignores the estimate written on its node, and the top level's covers the input buffer
    the host fills, which no layer's node holds."""
    from test_synth import wide_requant_layer

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.memory import INPUT_STYLE_KEY
    from qonnx_spartan.model_file import load_model

    path = tmp_path / "m.onnx"
    wide_requant_layer(3, 4).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    counts = {"LUT": 1, "LUTRAM": 0, "FF": 1, "BRAM18": 0, "DSP": 0}
    before = {r["layer"]: r["hardware"] for r in build_rows(out, measured={"wide": counts, "top": counts})}
    model = load_model(out / "model_int.onnx")
    model.set_metadata_prop(INPUT_STYLE_KEY, "block")
    for node in model.graph.node:
        node.attribute.remove(next(a for a in node.attribute if a.name == "cycles_estimate"))
    model.save(str(out / "model_int.onnx"))
    after = {r["layer"]: r["hardware"] for r in build_rows(out, measured={"wide": counts, "top": counts})}
    assert after["wide"] == before["wide"] and after["top"] != before["top"]


def test_calibrate_command_fits_and_the_estimate_uses_the_fit(tmp_path, ghdl, yosys):
    """`calibrate` on a synthesised build writes coefficients that `estimate --estimator` then uses; a
    budget can name them too (relative to the budget file)."""
    import subprocess
    import sys

    from test_synth import wide_requant_layer

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.synth import synthesise

    path = tmp_path / "m.onnx"
    wide_requant_layer(3, 4).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    measured = synthesise(out)["total"]

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "qonnx_spartan.cli", *map(str, args)], capture_output=True, text=True
        )

    coefficients = tmp_path / "mine.json"
    run = cli("calibrate", out, "-o", coefficients)
    assert run.returncode == 0, run.stderr
    assert "1 designs" in run.stdout and coefficients.is_file()
    lowered = out / "model_int.onnx"
    run = cli("estimate", lowered, "--estimator", coefficients, "--json")
    assert run.returncode == 0, run.stderr
    total = json.loads(run.stdout)["total"]
    # one design's layers fitted exactly enough: within a few LUT/FF of its own synthesis
    assert abs(total["LUT"] - measured["LUT"]) <= 3 and abs(total["FF"] - measured["FF"]) <= 3, (total, measured)
    budget = tmp_path / "budget.yaml"
    budget.write_text("device: xc7s15\nestimator: mine.json\n")
    run = cli("estimate", lowered, "--budget", budget, "--json")
    assert json.loads(run.stdout)["total"] == total
    budget.write_text("device: xc7s15\nestimator: missing.json\n")
    run = cli("estimate", lowered, "--budget", budget)
    assert run.returncode == 2 and "field 'estimator'" in run.stderr and "Traceback" not in run.stderr
