"""A model returning several tensors (issue #15): one output stream per graph output, streamed one after
another; the integer reference, both simulators, the cycle count and `simulate --output` give one array per
output.  The corpus (tests/test_frontend.py) runs encoder models with two and three outputs."""

from __future__ import annotations

import numpy as np
import pytest
from brevitas_models import calibrated, export, make_mlp, quantisers
from cli_errors import cli_error, run_cli

from qonnx_spartan.design import Design
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.simulation import simulate_build

IN_SHAPE = (4, 5)


def three_outputs_model():
    """Per time step: the ReLU features (unsigned, 6 bits), a quantised head (signed, 3 values) and an
    unquantised one (its accumulator, 2 values): three widths and both signednesses on three streams."""
    import brevitas.nn as qnn
    import torch

    act, uact, weight = quantisers(po2=False)

    class Heads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=6, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(5, 8, bias=True, weight_quant=weight, weight_bit_width=6)
            self.relu = qnn.QuantReLU(act_quant=uact, bit_width=6)
            self.classify = qnn.QuantLinear(
                8, 3, bias=True, weight_quant=weight, weight_bit_width=6, output_quant=act, output_bit_width=8
            )
            self.forecast = qnn.QuantLinear(8, 2, bias=True, weight_quant=weight, weight_bit_width=6)

        def forward(self, x):
            h = self.relu(self.fc(self.inp(x)))
            return self.classify(h), self.forecast(h), h

    torch.manual_seed(5)
    return calibrated(Heads(), IN_SHAPE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test model")
    tmp = tmp_path_factory.mktemp("heads")
    model = three_outputs_model()
    lowered = build(BuildConfig(model=export(model, tmp / "heads.onnx", (1, *IN_SHAPE)), output_dir=tmp / "b"))
    x = np.random.default_rng(5).normal(size=(12, *IN_SHAPE)).astype(np.float32)
    return model, lowered, tmp / "b", x


def test_each_output_is_one_stream_in_the_models_order(built):
    _, lowered, out, _ = built
    io = HostIO.load(lowered)
    assert [o.shape for o in io.outputs] == [[1, 4, 3], [1, 4, 2], [1, 4, 8]]
    assert [o.dtype.signed for o in io.outputs] == [True, True, False]
    top = (out / "hdl" / "qs_top.vhd").read_text()
    for k, o in enumerate(io.outputs):
        assert f"m{k}_axis_tdata  : out std_logic_vector({o.dtype.bits} - 1 downto 0);" in top
    assert "m_axis" not in top and "m3_axis" not in top


def test_outputs_bit_exact_in_both_simulators_and_cycles_as_estimated(built, ghdl, verilator):
    model, lowered, out, x = built
    reports = [simulate_build(out, x, simulator=s) for s in ("ghdl", "verilator")]
    assert all(r.bit_exact for r in reports)
    assert np.array_equal(reports[0].hardware, reports[1].hardware)
    cycles = Design(lowered).cycles()
    assert reports[0].cycles_per_inference == reports[1].cycles_per_inference == cycles
    io = reports[0].io
    # the top level streams every output element once, two cycles each
    assert Design(lowered).top_cycles() == io.input.count + 1 + 2 * (12 + 8 + 32)
    # each output within 3 of its own LSB of Brevitas (the unquantised head's LSB is the accumulator's,
    # which a rounding upstream moves by a weight: compared to max|W| times its input's LSB instead)
    ys = io.dequantize(reports[0].reference)
    expected = [brevitas_output(model, x, k) for k in range(3)]
    classify, relu = io.outputs[0].scale, io.outputs[2].scale
    weights = np.abs(model.forecast.quant_weight().value.detach().numpy()).max()
    for y, e, unit in zip(ys, expected, (classify, relu * weights, relu)):
        assert np.abs(y - e).max() <= 3 * unit


def brevitas_output(model, x, k):
    """The model's k-th output (the tests' brevitas_outputs takes a model with one)."""
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(x))[k]
    return np.asarray(getattr(y, "value", y), dtype=np.float64)


def test_simulate_writes_one_array_per_output(built, capsys, ghdl):
    _, lowered, out, x = built
    inputs = out.parent / "x.npy"
    np.save(inputs, x)
    code, _, err = run_cli(capsys, "simulate", out, "--inputs", inputs, "--output", out.parent / "y.npz")
    assert code == 0, err
    saved = np.load(out.parent / "y.npz")
    io = HostIO.load(lowered)
    assert sorted(saved.files) == ["output_0", "output_1", "output_2"]
    for k, y in enumerate(io.dequantize(simulate_build(out, x).reference)):
        assert saved[f"output_{k}"].shape == (12, 4, [3, 2, 8][k])
        assert np.array_equal(saved[f"output_{k}"], y)
    msg = cli_error(capsys, "simulate", out, "--inputs", inputs, "--output", out.parent / "y.npy")
    assert "the model has 3 outputs; give --output a .npz file" in msg


def test_a_single_output_model_still_streams_on_m_axis(tmp_path, brevitas):
    onnx_path = export(make_mlp([4, 6, 2], 6), tmp_path / "mlp.onnx", (1, 4))
    build(BuildConfig(model=onnx_path, output_dir=tmp_path / "b"))
    top = (tmp_path / "b" / "hdl" / "qs_top.vhd").read_text()
    assert "m_axis_tdata  : out" in top and "m0_axis" not in top and "out_sel" not in top


def test_a_quant_tensor_returned_is_refused_in_one_line(tmp_path, capsys, brevitas):
    """forward returning a QuantTensor exports its scale, zero point and bit width as further outputs."""
    model = three_outputs_model()
    model.relu.return_quant_tensor = True
    onnx_path = export(model, tmp_path / "qt.onnx", (1, *IN_SHAPE))
    msg = cli_error(capsys, "build", onnx_path, "-o", tmp_path / "b")
    assert "is a constant (a QuantTensor returned by forward" in msg


def test_a_build_from_before_several_outputs_still_loads(built):
    """A lowered model whose host I/O names one "output" (written before several outputs) reads as one."""
    import json

    from qonnx_spartan.hostio import METADATA_KEY
    from qonnx_spartan.model_file import load_model

    out = built[2]
    model = load_model(out / "model_int.onnx")
    d = json.loads(model.get_metadata_prop(METADATA_KEY))
    model.set_metadata_prop(METADATA_KEY, json.dumps({"input": d["input"], "output": d["outputs"][0]}))
    io = HostIO.load(model)
    assert len(io.outputs) == 1 and io.outputs[0] == HostIO.load(load_model(out / "model_int.onnx")).outputs[0]
