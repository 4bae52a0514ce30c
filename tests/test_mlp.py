"""Brevitas MLPs end to end: export -> build -> GHDL, bit-exact against the integer reference, and the
integer reference against Brevitas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brevitas_models import brevitas_outputs, export, make_mlp
from fidelity import requantised_tensor_lsb_errors

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.reference import run_reference
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import Tidy

SHAPES = [[4, 8, 3], [6, 16, 12, 2], [5, 3], [3, 20, 1]]
CASES = [
    # bits, power-of-two scales, shape, bias, output quantiser, memory style
    (
        bits,
        po2,
        SHAPES[(bits + po2) % len(SHAPES)],
        (bits + po2) % 3 != 0,
        bits % 2 == 0,
        "block" if (bits + po2) % 2 else "distributed",
    )
    for bits in range(2, 9)
    for po2 in (False, True)
]


@pytest.mark.parametrize("bits,po2,sizes,bias,out_quant,style", CASES)
def test_mlp_bit_exact_and_close_to_brevitas(tmp_path: Path, bits, po2, sizes, bias, out_quant, style, ghdl, brevitas):
    model = make_mlp(sizes, bits, po2=po2, bias=bias, out_quant=out_quant, seed=bits)
    onnx_path = export(model, tmp_path / "mlp.onnx", (1, sizes[0]))
    out = tmp_path / "build"
    lowered = build(BuildConfig(model=onnx_path, output_dir=out, memory_style=style))
    rng = np.random.default_rng(bits)
    x = (rng.normal(size=(40, sizes[0])) * 2).astype(np.float32)
    x[0], x[1] = 1e3, -1e3  # saturate the input quantiser both ways

    report = simulate_build(out, x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:5]
    estimate = (out / "report" / "estimate.json").read_text()
    assert f'"cycles": {report.cycles_per_inference},' in estimate

    # every requantised tensor within 1 LSB of Brevitas's (exactly equal with power-of-two scales)
    errors = requantised_tensor_lsb_errors(load_model(onnx_path).transform(Tidy()), lowered, x[:16])
    assert max(errors.values(), default=0) <= (0 if po2 else 1), errors
    # the output against the Brevitas module itself
    io = HostIO.load(lowered)
    y = io.output.dequantize(run_reference(lowered, io.batch(x, "x")))
    lsb = np.abs(y.reshape(len(x), -1) - brevitas_outputs(model, x).reshape(len(x), -1)) / io.output.scale
    lsb = np.round(lsb, 4)  # float32 representation noise of the dequantised values
    if out_quant:
        assert lsb.max() <= (0 if po2 else 1)
    elif po2:
        assert lsb.max() <= 0.5  # only the last bias is rounded to the accumulator's LSB
