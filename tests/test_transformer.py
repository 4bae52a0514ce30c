"""The paper's forecasting Transformer (examples/forecasting/model.py) end to end: GHDL bit-exact against
the integer reference at 8, 6 and 4 bits and on a mixed plan, with 1 and 2 heads, buffers in block and
distributed RAM; the integer reference within 3 output LSBs of Brevitas on random and on real inputs."""

from __future__ import annotations

import numpy as np
import pytest
from brevitas_models import calibrated
from fidelity import requantised_tensor_lsb_errors
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.reference import run_reference
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import Tidy

FEATURES = 3
MIXED_PLAN = {
    "encoder.ffn1": {"weight_bits": 4},
    "encoder.ffn_relu": {"act_bits": 4},
    "encoder.ffn2": {"weight_bits": 4},
    "encoder.q_proj": {"weight_bits": 6},
    "encoder.softmax_quant": {"act_bits": 6},
}


def calibrated_forecaster(window, d_model, heads, bits, plan=None, po2=False, seed=0):
    """The example model with its activation scales calibrated on random data (no training needed to
    check that hardware and reference agree)."""
    import torch
    from model import build_model

    torch.manual_seed(seed)
    return calibrated(
        build_model(window, FEATURES, d_model, heads, bits, plan=plan, po2=po2), (window, FEATURES), steps=12, batch=32
    )


def export_forecaster(model, path, window):
    import torch
    from brevitas.export import export_qonnx

    export_qonnx(model, torch.randn(1, window, FEATURES), export_path=str(path), dynamo=False)
    return path


@pytest.mark.parametrize(
    "window,d_model,heads,bits,plan,po2,style",
    [
        (4, 8, 1, 8, None, False, "distributed"),
        (4, 8, 2, 6, None, True, "block"),
        (3, 8, 2, 4, None, False, "block"),
        (4, 8, 1, 8, MIXED_PLAN, True, "distributed"),
    ],
    ids=["8bit-1head-lutram", "6bit-2heads-bram-po2", "4bit-2heads-bram", "mixed-1head-lutram-po2"],
)
def test_transformer_bit_exact(tmp_path, window, d_model, heads, bits, plan, po2, style, ghdl, brevitas):
    model = calibrated_forecaster(window, d_model, heads, bits, plan=plan, po2=po2)
    onnx_path = export_forecaster(model, tmp_path / "tf.onnx", window)
    lowered = build(
        BuildConfig(model=onnx_path, output_dir=tmp_path / "b", memory_style=style, budget=Budget(device="xc7s50"))
    )
    ops = [n.op_type for n in lowered.graph.node]
    assert {"IntMatMul", "IntSoftmax", "IntAffine", "IntMean", "IntAdd"} <= set(ops)
    x = np.random.default_rng(bits).normal(size=(12, window, FEATURES)).astype(np.float32)
    report = simulate_build(tmp_path / "b", x)
    assert report.bit_exact
    assert report.cycles_per_inference == Design(lowered).cycles()
    errors = requantised_tensor_lsb_errors(load_model(onnx_path).transform(Tidy()), lowered, x[:3])
    assert max(errors.values()) <= 3, errors


@pytest.mark.parametrize("bits", [8, 4])
def test_reference_tracks_brevitas_on_real_data(tmp_path, bits, brevitas):
    """Power-of-two scales, as the example uses: every tensor as Brevitas computes it."""
    from data import make_dataset

    window = 6
    data = make_dataset(window)
    model = calibrated_forecaster(window, 16, 2, bits, po2=True)
    lowered = load_model(export_forecaster(model, tmp_path / "tf.onnx", window))
    lowered = lowered.transform(Tidy())
    from qonnx_spartan.transforms import LowerToIntegerOps

    lowered = lowered.transform(LowerToIntegerOps())
    io = HostIO.load(lowered)
    rng = np.random.default_rng(0)
    for x in (
        data.test.x[rng.choice(len(data.test.x), 256, replace=False)],
        rng.normal(size=(256, window, FEATURES)).astype(np.float32),
    ):
        import torch

        with torch.no_grad():
            y_brevitas = model(torch.from_numpy(x)).numpy().reshape(len(x))
        y_int = io.output.dequantize(run_reference(lowered, io.batch(x, "x"))).reshape(len(x))
        assert np.abs(y_int - y_brevitas).max() / io.output.scale <= 3


@pytest.mark.parametrize("window", [12, 24])
def test_power_of_two_forecaster_equals_brevitas_on_every_tensor(tmp_path, window, brevitas):
    """The mean over 12 and 24 steps rescales by 1/6 here: its exact ties round half to even, as Brevitas's
    do, so that every requantised tensor is Brevitas's on real windows (the closest M, s was 1 LSB off)."""
    from data import make_dataset

    from qonnx_spartan.transforms import LowerToIntegerOps

    model = calibrated_forecaster(window, 8, 1, 4, po2=True)
    tidied = load_model(export_forecaster(model, tmp_path / "tf.onnx", window)).transform(Tidy())
    lowered = tidied.transform(LowerToIntegerOps())
    (mean,) = [n for n in lowered.graph.node if n.op_type == "IntMean"]
    assert getCustomOp(mean).rescale().tie_bits > 0
    errors = requantised_tensor_lsb_errors(tidied, lowered, make_dataset(window).test.x[:16])
    assert max(errors.values()) == 0, {name: err for name, err in errors.items() if err}
