"""The front end's canonicalisation (transforms/canonicalise.py) on Brevitas models written as users write
them: each idiom builds, GHDL equals the integer reference bit for bit, and the reference stays within 3
output LSBs of Brevitas; a model already canonical comes out of Canonicalise byte for byte."""

from __future__ import annotations

import math

import numpy as np
import pytest
from brevitas_models import brevitas_outputs, calibrated, quantisers

from qonnx_spartan import embedded
from qonnx_spartan.budget import Budget
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.reference import run_reference
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import Canonicalise, Tidy


def tiny_transformer(window=6, features=3, d_model=8, heads=2, bits=8, po2=True, seed=0):
    """TinyTransformer4TS's float idioms with Brevitas layers inserted as a user would: einsum attention
    with heads by `view` and `/ math.sqrt`, a sliced (1, T, D) positional buffer, BatchNorm1d through
    `permute`, AdaptiveAvgPool1d + squeeze, QuantLinear without output quantisers before residual adds."""
    import brevitas.nn as qnn
    import torch
    from torch import nn

    act, uact, weight = quantisers(po2)
    torch.manual_seed(seed)

    def ident(**kw):
        return qnn.QuantIdentity(act_quant=act, bit_width=bits, **kw)

    def linear(n_in, n_out):
        return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=weight, weight_bit_width=bits)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (linear(d_model, d_model) for _ in range(4))
            self.qq, self.kq, self.vq, self.score_q, self.ctx_q = (ident() for _ in range(5))
            self.attn_q = qnn.QuantIdentity(act_quant=uact, bit_width=bits)
            self.res_q = ident()
            self.norm = nn.BatchNorm1d(d_model)
            self.norm_q = ident(return_quant_tensor=True)
            self.ff1, self.ff2 = linear(d_model, 2 * d_model), linear(2 * d_model, d_model)
            self.relu = qnn.QuantReLU(act_quant=uact, bit_width=bits, return_quant_tensor=True)
            self.res2_q = ident(return_quant_tensor=True)

        def forward(self, x):
            b, t, _ = x.shape
            q = self.qq(self.q(x)).view(b, t, heads, -1)
            k = self.kq(self.k(x)).view(b, t, heads, -1)
            v = self.vq(self.v(x)).view(b, t, heads, -1)
            scores = self.score_q(torch.einsum("blhe,bshe->bhls", q, k) / math.sqrt(d_model // heads))
            p = self.attn_q(torch.softmax(scores, dim=-1))
            c = self.ctx_q(torch.einsum("bhls,bshd->blhd", p, v).reshape(b, t, d_model))
            y = self.res_q(x + self.o(c))
            y = self.norm_q(self.norm(y.permute(0, 2, 1)).permute(0, 2, 1))
            return self.res2_q(y + self.ff2(self.relu(self.ff1(y))))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = ident(return_quant_tensor=True)
            self.embed = linear(features, d_model)
            self.embed_q = ident()
            self.register_buffer("pe", torch.randn(1, 2 * window, d_model) * 0.5)
            self.pe_q = ident()
            self.x_q = ident(return_quant_tensor=True)
            self.layer = Layer()
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.pool_q = ident(return_quant_tensor=True)
            self.head = linear(d_model, 2)

        def forward(self, x):
            x = self.x_q(self.embed_q(self.embed(self.inp(x))) + self.pe_q(self.pe[:, : x.shape[1]]))
            y = self.layer(x)
            return self.head(self.pool_q(self.pool(y.transpose(1, 2)).squeeze(2)))

    return calibrated(Model(), (window, features))


def export_model(model, path, in_shape, dynamo=False):
    import torch
    from brevitas.export import export_qonnx

    export_qonnx(model, torch.randn(*in_shape), export_path=str(path), **({} if dynamo else {"dynamo": False}))
    return path


class SequenceFirst:
    """Calibration of a sequence-first model on batch-first inputs."""

    def __init__(self, inner):
        self.inner = inner

    def train(self):
        self.inner.train()

    def eval(self):
        self.inner.eval()

    def __call__(self, x):
        return self.inner(x.transpose(0, 1))


def build_and_compare(tmp_path, model, in_shape, dynamo=False, vectors=16, seed=0, vectors_in=None, device="xc7s50"):
    """Build, GHDL against the reference, and the reference's worst distance to Brevitas in output LSBs
    (`vectors_in` turns the inputs into the batch-first ones a sequence-first model takes, (N, T, D))."""
    onnx_path = export_model(model, tmp_path / "model.onnx", in_shape if vectors_in else (1, *in_shape), dynamo)
    lowered = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "b", budget=Budget(device=device)))
    x = np.random.default_rng(seed).normal(size=(vectors, *in_shape)).astype(np.float32)
    report = simulate_build(tmp_path / "b", x)
    io = HostIO.load(lowered)
    ints = run_reference(lowered, io.batch(x, "x"))
    if vectors_in is None:
        expected = brevitas_outputs(model, x).reshape(vectors, -1)
    else:
        expected = brevitas_outputs(SequenceFirst(model), vectors_in(x)).transpose(1, 0, 2).reshape(vectors, -1)
    return report, np.abs(ints * io.output.scale - expected).max() / output_lsb(lowered)


def output_lsb(lowered) -> float:
    """The unit the output's distance to Brevitas is counted in: the output's LSB, or, for a linear layer
    left unquantised (its accumulator is the output), the most one LSB of its input moves it (the largest
    weight): a tie that rounds the other way upstream moves such an output by a weight, not by 1."""
    from qonnx.custom_op.registry import getCustomOp

    io = HostIO.load(lowered)
    last = getCustomOp(next(n for n in lowered.graph.node if n.output[0] == io.output.name))
    if last.onnx_node.op_type == "IntLinear" and not last.get_nodeattr("requant"):
        return io.output.scale * float(np.abs(last.weights()).max()) * 2 ** last.get_nodeattr("acc_shift")
    return io.output.scale


@pytest.mark.parametrize("dynamo", [False, True])
def test_tiny_transformer_idioms_build_bit_exact(tmp_path, dynamo, ghdl, brevitas):
    model = tiny_transformer()
    report, lsb = build_and_compare(tmp_path, model, (6, 3), dynamo=dynamo)
    assert report.bit_exact
    assert lsb <= 3, lsb


def test_canonical_model_is_unchanged():
    tidied = load_model(embedded.model_path()).transform(Tidy())
    assert tidied.transform(Canonicalise()).model.SerializeToString() == tidied.model.SerializeToString()


def quant_mha(d_model=8, heads=2, batch_first=True, packed=False, seed=0, softmax_input_quant=None):
    """Brevitas's QuantMultiheadAttention as documented, self-attention on a quantised input; by default
    (as Brevitas's) the softmax reads the unquantised scores."""
    import brevitas.nn as qnn
    import torch
    torch.manual_seed(seed)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.mha = qnn.QuantMultiheadAttention(
                d_model,
                heads,
                batch_first=batch_first,
                packed_in_proj=packed,
                softmax_input_quant=softmax_input_quant,
            )

        def forward(self, x):
            x = self.inp(x)
            return self.mha(x, x, x, need_weights=False)[0]

    return Model()


@pytest.mark.parametrize(
    "heads,batch_first,packed,dynamo",
    # torch.export fails on a packed in-projection (a data pointer of a fake tensor), so it goes through dynamo=False
    [
        (1, True, False, True),
        (2, True, True, False),
        (4, False, False, False),
        (2, False, True, False),
        (2, False, False, True),
    ],
)
def test_quant_multihead_attention_builds_bit_exact(tmp_path, heads, batch_first, packed, dynamo, ghdl, brevitas):
    window, d_model = 4, 8
    model = quant_mha(d_model, heads, batch_first=batch_first, packed=packed, seed=heads)  # Brevitas's defaults
    if batch_first:
        report, lsb = build_and_compare(tmp_path, calibrated(model, (window, d_model)), (window, d_model), dynamo)
    else:  # sequence first: exported as (T, 1, D), one vector per inference
        model = calibrated(SequenceFirst(model), (window, d_model)).inner
        report, lsb = build_and_compare(tmp_path, model, (window, 1, d_model), dynamo, vectors_in=lambda x: x[:, :, 0])
    assert report.bit_exact
    assert lsb <= 3, lsb


def test_a_quantised_softmax_input_is_kept(tmp_path, ghdl, brevitas):
    """With softmax_input_quant set, the scores are the user's quantiser's, and the table spans its range."""
    from brevitas.quant import Int8ActPerTensorFloat
    from qonnx.custom_op.registry import getCustomOp

    model = calibrated(quant_mha(8, 2, seed=5, softmax_input_quant=Int8ActPerTensorFloat), (4, 8))
    report, lsb = build_and_compare(tmp_path, model, (4, 8), device="xc7s15")
    lowered = load_model(tmp_path / "b" / "model_int.onnx")
    softmax = next(getCustomOp(n) for n in lowered.graph.node if n.op_type == "IntSoftmax")
    assert softmax.get_nodeattr("exp_clamp") == 0 and len(softmax.exp_table()) == 256
    assert report.bit_exact and lsb <= 3, lsb
