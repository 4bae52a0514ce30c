"""The second example model (issue #16): the forecaster as a pre-norm encoder with LayerNorm, a GELU FFN
and a Conv1d token embedding (`build_model(..., norm="layer", act="gelu", embed="conv")`), untrained and
calibrated, built with both exporters: every new op in one design, GHDL bit-exact against the integer
reference in the stated cycles, within 3 output LSBs of Brevitas."""

from __future__ import annotations

import numpy as np
import pytest
from brevitas_models import brevitas_outputs, calibrated
from test_op_table import export
from test_schedule import check_traces

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design

WINDOW, FEATURES = 6, 3


def encoder(po2: bool, bits: int = 6):
    import torch
    from model import build_model

    torch.manual_seed(0)
    model = build_model(WINDOW, FEATURES, 8, 2, bits, po2=po2, norm="layer", act="gelu", embed="conv")
    return calibrated(model, (WINDOW, FEATURES), steps=12, batch=32)


@pytest.mark.parametrize("exporter,po2", [("torchscript", True), ("dynamo", False)])
def test_prenorm_gelu_conv_encoder_is_bit_exact(tmp_path, exporter, po2, brevitas, ghdl):
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.simulation import simulate_build

    model = encoder(po2)
    path = export(model, exporter, tmp_path / "encoder.onnx", in_shape=(1, WINDOW, FEATURES))
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "build", budget=Budget(device="xc7s50")))
    ops = [n.op_type for n in lowered.graph.node]
    assert {"IntConv1d", "IntLayerNorm", "IntTable"} <= set(ops), ops
    x = np.random.default_rng(3).normal(size=(16, WINDOW, FEATURES)).astype(np.float32)
    report = simulate_build(tmp_path / "build", x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    design = Design(lowered)
    assert report.cycles_per_inference == design.cycles()
    # the layers overlap (qonnx_spartan/schedule.py), the LayerNorm's and the table's readers too
    check_traces(design)
    s = design.schedule
    for layer in design.layers:
        if layer.op.onnx_node.op_type in ("IntLayerNorm", "IntTable"):
            readers = design.buffers[layer.output].readers
            assert any(s.starts[i] <= s.dones[layer.index] for i, _ in readers), layer.name
    lsb = report.io.output.scale
    assert np.abs(report.hardware * lsb - brevitas_outputs(model, x).reshape(len(x), -1)).max() / lsb <= 3


def test_variant_names_are_checked(brevitas):
    from model import build_model

    with pytest.raises(ValueError, match="norm 'group'"):
        build_model(WINDOW, FEATURES, 8, 2, 6, norm="group")
