"""Unquantised accumulators (Brevitas's default QuantLinear, no output quantiser): the MAC's result goes on
at its exact width into a residual add, a mean, another MAC, and the first quantiser after them rounds it.
As tests/test_overflow.py does for single ops: on extreme inputs every node's reference equals a
recomputation in Python integers, every value the hardware holds fits its declared width, and GHDL equals
the reference bit for bit; the estimate counts the wider operands."""

from __future__ import annotations

import numpy as np
import pytest
from brevitas_models import brevitas_outputs, calibrated, quantisers
from exact import extremes
from qonnx.custom_op.registry import getCustomOp
from test_overflow import as_ints, recomputed, reference_context

from qonnx_spartan.budget import Budget
from qonnx_spartan.design import Design
from qonnx_spartan.estimate import estimate
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.simulation import simulate_build

WINDOW, D_MODEL = 4, 6


def model_with(kind: str, po2: bool, bits: int = 8):
    """x -> QuantIdentity -> QuantLinear (no output quantiser) -> `kind` -> a quantiser."""
    import brevitas.nn as qnn
    import torch

    act, _, weight = quantisers(po2)
    torch.manual_seed(bits)

    def linear(n_in, n_out, **kw):
        return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=weight, weight_bit_width=bits, **kw)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=bits, return_quant_tensor=True)
            self.lin = linear(D_MODEL, D_MODEL)
            self.out_q = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            self.second = linear(D_MODEL, 3, output_quant=act, output_bit_width=bits)

        def forward(self, x):
            x = self.inp(x)
            if kind == "residual":
                return self.out_q(x + self.lin(x))
            if kind == "mean":
                return self.second(self.lin(x).mean(dim=1))
            return self.second(self.lin(x))  # "mac": one linear straight into the next

    return calibrated(Model(), (WINDOW, D_MODEL))


@pytest.mark.parametrize("kind", ["residual", "mean", "mac"])
@pytest.mark.parametrize("po2", [True, False])
def test_unquantised_accumulator_is_exact_and_fits_its_width(tmp_path, kind, po2, ghdl, brevitas):
    import torch
    from brevitas.export import export_qonnx

    model = model_with(kind, po2)
    path = tmp_path / "m.onnx"
    export_qonnx(model, torch.randn(1, WINDOW, D_MODEL), export_path=str(path), dynamo=False)
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "b"))
    first = getCustomOp(lowered.graph.node[0])
    assert first.onnx_node.op_type == "IntLinear" and not first.get_nodeattr("requant")
    acc_bits = first.out_type().bits
    assert acc_bits > 8  # the reader takes the accumulator, wider than any quantised tensor here

    io = HostIO.load(lowered)
    t = io.input.dtype
    vectors = np.array(extremes(t, io.input.count) + extremes(t, io.input.count, period=D_MODEL)[2:])
    context = reference_context(lowered, vectors)
    for node in lowered.graph.node:
        op = getCustomOp(node)
        inputs = [as_ints(context[name]) for name in node.input]
        for item, got in enumerate(as_ints(context[node.output[0]])):
            operands = [values[item] for values in inputs]
            want, _ = recomputed(op, operands)  # asserting on the way the widths the op declares
            assert got == want, (node.name, item)
        if first.onnx_node.output[0] in node.input:  # the reader takes the accumulator at its width
            port = list(node.input).index(first.onnx_node.output[0])
            read = (op.a_type(), op.b_type())[port] if node.op_type == "IntAdd" else op.in_type()
            assert read.bits == acc_bits

    x = vectors * io.input.scale
    report = simulate_build(tmp_path / "b", x.reshape(len(vectors), *io.input.shape[1:]))
    assert report.bit_exact
    expected = brevitas_outputs(model, x.reshape(len(vectors), WINDOW, D_MODEL)).reshape(len(vectors), -1)
    assert np.abs(report.reference * io.output.scale - expected).max() <= 3 * io.output.scale

    # the design and the estimate hold the accumulator in a buffer of its own width
    buffer = Design(lowered).buffers[first.onnx_node.output[0]].memory
    assert buffer.width == acc_bits
    assert estimate(lowered, Budget())["layers"][first.onnx_node.name]["LUTRAM"] >= buffer.lutram > 0
    # an accumulator leaves its MAC as it is: no rounding or saturation logic is counted for it
    features = first.resource_features()
    assert features["out_bits"] == 0 and features["round_logic_bits"] + features.get("round_dsp_bits", 0) == 0
    requantising = [getCustomOp(n) for n in lowered.graph.node if n.op_type == "IntLinear"][1:]
    assert all(op.resource_features()["out_bits"] == op.out_type().bits for op in requantising if op.get_nodeattr("requant"))


def test_bias_of_an_accumulator_is_held_as_finely_as_the_add_after_it(tmp_path, brevitas):
    """With float scales, a bias that reaches a residual add unrounded is held within
    ACCUMULATOR_BIAS_ERROR_LSB of an LSB of the quantiser after the add, the precision of the add's own terms
    (TERM_ERROR_LSB), where a requantised layer's bias is held to BIAS_ERROR_LSB."""
    import torch
    from brevitas.export import export_qonnx

    from qonnx_spartan.ops.elementwise.int_add import TERM_ERROR_LSB
    from qonnx_spartan.transforms.lower import ACCUMULATOR_BIAS_ERROR_LSB, BIAS_ERROR_LSB

    assert ACCUMULATOR_BIAS_ERROR_LSB <= TERM_ERROR_LSB < BIAS_ERROR_LSB
    model = model_with("residual", po2=False)
    path = tmp_path / "m.onnx"
    export_qonnx(model, torch.randn(1, WINDOW, D_MODEL), export_path=str(path), dynamo=False)
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "b", stop_step="lower"))
    linear = getCustomOp(lowered.graph.node[0])
    io = HostIO.load(lowered)
    with torch.no_grad():
        acc_scale = io.input.scale * float(model.lin.quant_weight().scale)
        bias = model.lin.bias.double().numpy() / acc_scale
    held = linear.bias() / 2.0 ** linear.get_nodeattr("acc_shift")
    error = np.abs(held - bias).max() * acc_scale / io.output.scale
    assert 0 < error <= ACCUMULATOR_BIAS_ERROR_LSB
