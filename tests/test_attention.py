"""Products of two activations with heads split, K transposed and heads merged as addressing:
GHDL bit-exact against the integer reference, every tensor within 1 LSB of Brevitas."""

from __future__ import annotations

import numpy as np
import pytest
from brevitas_models import export, make_attention_core
from fidelity import requantised_tensor_lsb_errors

from qonnx_spartan.design import Design
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.model_file import load_model
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import Tidy


@pytest.mark.parametrize(
    "window,d_model,heads,bits,po2,style",
    [
        (5, 8, 1, 6, False, "distributed"),
        (4, 8, 2, 5, True, "block"),
        (3, 8, 4, 8, False, "block"),
    ],
)
def test_attention_core(tmp_path, window, d_model, heads, bits, po2, style, ghdl, brevitas):
    model = make_attention_core(window, d_model, heads, bits, po2=po2, seed=heads)
    onnx_path = export(model, tmp_path / "att.onnx", (1, window, d_model))
    lowered = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "b", memory_style=style))
    assert [n.op_type for n in lowered.graph.node].count("IntMatMul") == 2
    x = np.random.default_rng(heads).normal(size=(10, window, d_model)).astype(np.float32)
    report = simulate_build(tmp_path / "b", x)
    assert report.bit_exact
    assert report.cycles_per_inference == Design(lowered).cycles()
    errors = requantised_tensor_lsb_errors(load_model(onnx_path).transform(Tidy()), lowered, x[:4])
    assert max(errors.values()) <= (0 if po2 else 1), errors
