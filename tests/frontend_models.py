"""The front-end corpus (issue #15): Brevitas models written the way people write them, not the way the
tool's own example does.

Every model is seeded, tiny (d_model 8-32, window 4-24) and calibrated on random batches in train mode
(no training: the check is that hardware, integer reference and Brevitas agree, not that a model is
useful).  The idioms each one uses are listed in its `idioms`; they follow the authors' public float model
TinyTransformer4TS (REFERENCE.md: einsum attention, heads by `view`, BatchNorm through `permute`, a sliced
(1, T, D) positional buffer, AdaptiveAvgPool1d, plain Linear layers) and Brevitas's documentation
(QuantLinear with its defaults: float scales, no output quantiser; QuantMultiheadAttention).

The corpus also runs them: export with either exporter, build through the command line (as a user does),
simulate in GHDL, and compare the hardware's outputs with the Brevitas model's in output LSBs.  The tests
(tests/test_frontend.py) and the table (benchmarks/frontend.py) share these functions.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from brevitas_models import quantisers

from qonnx_spartan.design import Design
from qonnx_spartan.model_file import load_model

#: The two ways to export: TorchScript (`dynamo=False`, what the tool was written for) and torch's
#: default (dynamo) exporter, which is what `export_qonnx(model, x, path)` uses in torch 2.13.
EXPORTERS = ("torchscript", "dynamo")
#: The devices a model is built for, in turn: the XC7S15, and for a model that does not fit it a larger part.
DEVICES = ("xc7s15", "xc7s50")
#: Vectors per GHDL run (the issue asks for at least 16).
VECTORS = 16
#: The integer design may differ from Brevitas by this many output LSBs (the issue's bound).
MAX_LSB = 3
#: Text that must never reach a user in a refusal: messages and tracebacks of the libraries underneath.
LIBRARY_TEXT = re.compile(
    r"Traceback|numpy|onnx\.|onnxruntime|qonnx\.|axis remapping|operand|ValidationError|"
    r"KeyError|IndexError|AttributeError|TypeError|AssertionError|internal error",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------------------- layers


class Q:
    """The layers a user writes, with one bit width and one scale kind.  With `po2=False` the quantisers are
    left at Brevitas's defaults (float scales), as in Brevitas's documentation."""

    def __init__(self, bits: int, po2: bool, weight_bits: int | None = None):
        self.bits, self.po2 = bits, po2
        self.weight_bits = weight_bits or bits
        self.act, self.uact, self.weight = quantisers(po2)

    def linear(self, n_in, n_out, bias=True, **kw):
        """Brevitas's QuantLinear as documented: no input or output quantiser unless asked for."""
        import brevitas.nn as qnn

        if self.po2:
            kw.setdefault("weight_quant", self.weight)
        if "output_quant" in kw:
            kw["output_quant"] = self.act
            kw.setdefault("output_bit_width", self.bits)
        if "input_quant" in kw:
            kw["input_quant"] = self.act
            kw.setdefault("input_bit_width", self.bits)
        return qnn.QuantLinear(n_in, n_out, bias=bias, weight_bit_width=self.weight_bits, **kw)

    def ident(self, signed=True, **kw):
        import brevitas.nn as qnn

        if self.po2 or not signed:
            kw.setdefault("act_quant", self.act if signed else self.uact)
        return qnn.QuantIdentity(bit_width=self.bits, **kw)

    def relu(self, **kw):
        import brevitas.nn as qnn

        if self.po2:
            kw.setdefault("act_quant", self.uact)
        return qnn.QuantReLU(bit_width=self.bits, **kw)


def sinusoidal_pe(max_len: int, d_model: int):
    """The (1, max_len, d_model) buffer of the Transformer tutorials (`pe.unsqueeze(0)`)."""
    import torch

    position = torch.arange(max_len).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)


# ----------------------------------------------------------------------------------------------- modules
# Written as module classes at top level, the way a user's model file reads.  torch is imported lazily so
# that collecting the tests without brevitas installed still works (they are skipped by the fixture).


def _modules():
    import torch
    from torch import nn

    class EinsumAttention(nn.Module):
        """TinyTransformer4TS's attention: heads by view, einsum scores scaled by / sqrt(d_head), softmax,
        einsum with V, heads merged by reshape, output projection (default QuantLinear, no output quant)."""

        def __init__(self, q: Q, d_model, heads, quant_qkv="output"):
            super().__init__()
            self.heads, self.d_head = heads, d_model // heads
            qkv = {"output_quant": True} if quant_qkv == "output" else {}
            self.q_linear = q.linear(d_model, d_model, **qkv)
            self.k_linear = q.linear(d_model, d_model, **qkv)
            self.v_linear = q.linear(d_model, d_model, **qkv)
            if quant_qkv == "identity":
                self.q_quant, self.k_quant, self.v_quant = q.ident(), q.ident(), q.ident()
            else:
                self.q_quant = self.k_quant = self.v_quant = nn.Identity()
            self.attn_quant = q.ident(signed=False)
            self.context_quant = q.ident()
            self.out = q.linear(d_model, d_model)

        def forward(self, x):
            B, L, _ = x.shape
            q = self.q_quant(self.q_linear(x)).view(B, L, self.heads, -1)
            k = self.k_quant(self.k_linear(x)).view(B, L, self.heads, -1)
            v = self.v_quant(self.v_linear(x)).view(B, L, self.heads, -1)
            scores = torch.einsum("blhe,bshe->bhls", q, k) / math.sqrt(self.d_head)
            attn = self.attn_quant(torch.softmax(scores, dim=-1))
            context = torch.einsum("bhls,bshd->blhd", attn, v).reshape(B, L, -1)
            return self.out(self.context_quant(context))

    class MatmulAttention(nn.Module):
        """The nanoGPT / PyTorch-tutorial form: view + transpose(1, 2), q @ k.transpose(-2, -1) / sqrt(d),
        softmax, (p @ v).transpose(1, 2).reshape(B, T, D), then the quantiser."""

        def __init__(self, q: Q, d_model, heads):
            super().__init__()
            self.heads, self.d_head, self.d_model = heads, d_model // heads, d_model
            self.qkv_quant = q.ident()
            self.query = q.linear(d_model, d_model)
            self.key = q.linear(d_model, d_model)
            self.value = q.linear(d_model, d_model)
            self.q_quant, self.k_quant, self.v_quant = q.ident(), q.ident(), q.ident()
            self.score_quant = q.ident()
            self.prob_quant = q.ident(signed=False)
            self.context_quant = q.ident()
            self.proj = q.linear(d_model, d_model)

        def forward(self, x):
            B, T, D = x.shape
            q = self.q_quant(self.query(x)).view(B, T, self.heads, self.d_head).transpose(1, 2)
            k = self.k_quant(self.key(x)).view(B, T, self.heads, self.d_head).transpose(1, 2)
            v = self.v_quant(self.value(x)).view(B, T, self.heads, self.d_head).transpose(1, 2)
            att = self.score_quant(q @ k.transpose(-2, -1) / math.sqrt(self.d_head))
            att = self.prob_quant(torch.softmax(att, dim=-1))
            y = (att @ v).transpose(1, 2).reshape(B, T, D)
            return self.proj(self.context_quant(y))

    class EncoderLayer(nn.Module):
        """TinyTransformer4TS's encoder layer with Brevitas layers dropped in: residual adds after default
        QuantLinears, BatchNorm1d through permute(0, 2, 1), FFN d -> ffn -> d with ReLU."""

        def __init__(self, q: Q, d_model, heads, ffn, attention="einsum", norm_via="permute"):
            super().__init__()
            attention_class = EinsumAttention if attention == "einsum" else MatmulAttention
            self.attn = attention_class(q, d_model, heads)
            self.norm_via = norm_via
            self.dropout = nn.Dropout(0.1)
            self.add1_quant = q.ident()
            self.norm1 = nn.BatchNorm1d(d_model)
            self.norm1_quant = q.ident()
            self.ffn1 = q.linear(d_model, ffn)
            self.relu = q.relu()
            self.ffn2 = q.linear(ffn, d_model)
            self.add2_quant = q.ident()
            self.norm2 = nn.BatchNorm1d(d_model)
            self.norm2_quant = q.ident()

        def _norm(self, bn, x):
            if self.norm_via == "permute":
                return bn(x.permute(0, 2, 1)).permute(0, 2, 1)
            return bn(x.transpose(1, 2)).transpose(1, 2)

        def forward(self, x):
            x = self.add1_quant(x + self.dropout(self.attn(x)))
            x = self.norm1_quant(self._norm(self.norm1, x))
            x = self.add2_quant(x + self.dropout(self.ffn2(self.relu(self.ffn1(x)))))
            return self.norm2_quant(self._norm(self.norm2, x))

    class TinyTransformer4TS(nn.Module):
        """The authors' float architecture (models/fp32) with Brevitas layers inserted: input projection,
        sliced (1, T, D) sinusoidal buffer, stacked encoder layers, AdaptiveAvgPool1d(1) over time and
        squeeze(2), a Linear head with N outputs (regression or class logits)."""

        def __init__(self, q: Q, features, window, d_model, heads, layers, outputs, ffn=None, max_len=64):
            super().__init__()
            self.input_quant = q.ident(return_quant_tensor=False)
            self.input_linear = q.linear(features, d_model)
            self.register_buffer("pe", sinusoidal_pe(max_len, d_model))
            self.pe_quant = q.ident()
            self.embed_quant = q.ident()
            self.layers = nn.ModuleList(EncoderLayer(q, d_model, heads, ffn or 2 * d_model) for _ in range(layers))
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.pool_quant = q.ident()
            self.head = q.linear(d_model, outputs)

        def forward(self, x):
            x = self.input_linear(self.input_quant(x))
            x = self.embed_quant(x + self.pe_quant(self.pe[:, : x.size(1)]))
            for layer in self.layers:
                x = layer(x)
            x = self.pool(x.permute(0, 2, 1)).squeeze(2)
            return self.head(self.pool_quant(x))

    return {
        "EinsumAttention": EinsumAttention,
        "MatmulAttention": MatmulAttention,
        "EncoderLayer": EncoderLayer,
        "TinyTransformer4TS": TinyTransformer4TS,
    }


# ------------------------------------------------------------------------------------------------ models


def mlp_residual_mean(seed):
    """Per-time-step MLP whose second default QuantLinear feeds a residual add; `x.mean(dim=1)`; regression."""
    import torch
    from torch import nn

    q = Q(8, po2=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.fc1 = q.linear(8, 16)
            self.act = q.relu()
            self.fc2 = q.linear(16, 8)
            self.res_quant = q.ident()
            self.mean_quant = q.ident()
            self.out = q.linear(8, 1)

        def forward(self, x):
            x = self.inp(x)
            x = self.res_quant(x + self.fc2(self.act(self.fc1(x))))
            return self.out(self.mean_quant(x.mean(dim=1)))

    torch.manual_seed(seed)
    return Net()


def mlp_2bit_adaptive_pool(seed):
    """2-bit weights and activations (power-of-two), AdaptiveAvgPool1d(1) over time through transpose(1, 2)
    and squeeze(2), classifier with 4 classes."""
    import torch
    from torch import nn

    q = Q(2, po2=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.fc1 = q.linear(6, 12)
            self.act = q.relu()
            self.fc2 = q.linear(12, 12)
            self.act2 = q.relu()
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.pool_quant = q.ident()
            self.classifier = q.linear(12, 4)

        def forward(self, x):
            x = self.act2(self.fc2(self.act(self.fc1(self.inp(x)))))
            x = self.pool(x.transpose(1, 2)).squeeze(2)
            return self.classifier(self.pool_quant(x))

    torch.manual_seed(seed)
    return Net()


def pe_buffer_sliced(seed):
    """Embedding plus the (1, max_len, D) sinusoidal buffer sliced `pe[:, :T]`, added unquantised to the
    default QuantLinear's accumulator; mean over time; 3 regression outputs."""
    import torch
    from torch import nn

    q = Q(8, po2=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(3, 16)
            self.register_buffer("pe", sinusoidal_pe(100, 16))
            self.embed_quant = q.ident()
            self.fc = q.linear(16, 16)
            self.act = q.relu()
            self.pool_quant = q.ident()
            self.head = q.linear(16, 3)

        def forward(self, x):
            x = self.embed(self.inp(x))
            x = self.embed_quant(x + self.pe[:, : x.size(1)])
            x = self.act(self.fc(x))
            return self.head(self.pool_quant(x.mean(dim=1)))

    torch.manual_seed(seed)
    return Net()


def batchnorm_permute(seed):
    """BatchNorm1d on (B, T, D) through permute(0, 2, 1), 4 bits power-of-two, QuantLinear with its own
    input_quant (no separate QuantIdentity), mean over time, 2 outputs."""
    import torch
    from torch import nn

    q = Q(4, po2=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = q.linear(5, 8, input_quant=True)
            self.bn = nn.BatchNorm1d(8)
            self.bn_quant = q.ident()
            self.fc = q.linear(8, 8)
            self.act = q.relu()
            self.head = q.linear(8, 2, input_quant=True)

        def forward(self, x):
            x = self.proj(x)
            x = self.bn_quant(self.bn(x.permute(0, 2, 1)).permute(0, 2, 1))
            x = self.act(self.fc(x))
            return self.head(x.mean(dim=1))

    torch.manual_seed(seed)
    return Net()


def batchnorm_transpose_residual(seed):
    """BatchNorm1d through transpose(1, 2) twice after a residual add of a default QuantLinear, 7 bits
    float scales, AdaptiveAvgPool1d, classification (3 classes)."""
    import torch
    from torch import nn

    q = Q(7, po2=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(4, 12, output_quant=True)
            self.fc = q.linear(12, 12)
            self.add_quant = q.ident()
            self.norm = nn.BatchNorm1d(12)
            self.norm_quant = q.ident()
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.pool_quant = q.ident()
            self.cls = q.linear(12, 3)

        def forward(self, x):
            x = self.embed(self.inp(x))
            x = self.add_quant(x + self.fc(x))
            x = self.norm_quant(self.norm(x.transpose(1, 2)).transpose(1, 2))
            x = self.pool(x.transpose(1, 2)).squeeze(2)
            return self.cls(self.pool_quant(x))

    torch.manual_seed(seed)
    return Net()


def einsum_attention_block(heads, bits, po2, outputs, quant_qkv):
    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2=po2)
        M = _modules()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(4, 16, output_quant=True)
                self.attn = M["EinsumAttention"](q, 16, heads, quant_qkv=quant_qkv)
                self.add_quant = q.ident()
                self.pool = nn.AdaptiveAvgPool1d(1)
                self.pool_quant = q.ident()
                self.head = q.linear(16, outputs)

            def forward(self, x):
                x = self.embed(self.inp(x))
                x = self.add_quant(x + self.attn(x))
                x = self.pool(x.permute(0, 2, 1)).squeeze(2)
                return self.head(self.pool_quant(x))

        torch.manual_seed(seed)
        return Net()

    return make


def matmul_attention_block(heads, bits, po2):
    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2=po2)
        M = _modules()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(3, 8, output_quant=True)
                self.attn = M["MatmulAttention"](q, 8, heads)
                self.add_quant = q.ident()
                self.head = q.linear(8, 1)

            def forward(self, x):
                x = self.embed(self.inp(x))
                x = self.add_quant(x + self.attn(x))
                return self.head(x.mean(dim=1))

        torch.manual_seed(seed)
        return Net()

    return make


def tiny_transformer(features, window, d_model, heads, layers, outputs, bits, po2, weight_bits=None):
    def make(seed):
        import torch

        torch.manual_seed(seed)
        q = Q(bits, po2=po2, weight_bits=weight_bits)
        return _modules()["TinyTransformer4TS"](q, features, window, d_model, heads, layers, outputs)

    return make


def quant_mha(batch_first, packed_in_proj, heads, d_model, bits=8, changed=False):
    """Brevitas's QuantMultiheadAttention over (B, T, F) data: a QuantLinear embedding, the attention
    (transposed to (T, B, D) and back when batch_first is False), a residual add, mean, head."""

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2=False)
        kw = {}
        if changed:  # the user changed its default quantisers: 6-bit weights, power-of-two activations
            act, uact, weight = quantisers(po2=True)
            kw = dict(
                in_proj_input_quant=act,
                in_proj_weight_quant=weight,
                in_proj_weight_bit_width=6,
                out_proj_weight_quant=weight,
                out_proj_weight_bit_width=6,
                attn_output_weights_quant=uact,
                q_scaled_quant=act,
                k_transposed_quant=act,
                v_quant=act,
                out_proj_input_quant=act,
                out_proj_output_quant=act,
            )

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(3, d_model, output_quant=True)
                self.mha = qnn.QuantMultiheadAttention(
                    d_model, heads, batch_first=batch_first, packed_in_proj=packed_in_proj, **kw
                )
                self.add_quant = q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d_model, 2)

            def forward(self, x):
                x = self.embed(self.inp(x))
                if batch_first:
                    a, _ = self.mha(x, x, x, need_weights=False)
                else:
                    t = x.transpose(0, 1)
                    a, _ = self.mha(t, t, t, need_weights=False)
                    a = a.transpose(0, 1)
                x = self.add_quant(x + a)
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


def flatten_head(seed):
    """Per-step embedding, dropout, then the whole window flattened (nn.Flatten) into a classifier with 4
    classes, and x.view(B, -1) in the same model for a second projection; po2 6 bits."""
    import torch
    from torch import nn

    q = Q(6, po2=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(3, 6)
            self.act = q.relu()
            self.drop = nn.Dropout(0.2)
            self.flatten = nn.Flatten()
            self.hidden = q.linear(8 * 6, 12)
            self.act2 = q.relu()
            self.classifier = q.linear(12, 4)

        def forward(self, x):
            x = self.drop(self.act(self.embed(self.inp(x))))
            x = self.act2(self.hidden(self.flatten(x)))
            return self.classifier(x.view(x.size(0), -1))

    torch.manual_seed(seed)
    return Net()


def token_mixing(seed):
    """MLP-Mixer's token mixing written two ways, each before a residual add: a weight matrix over time on
    the left, `mix_quant(W) @ x` (a QuantIdentity on a Parameter quantises it), and a QuantLinear over
    time through `transpose(1, 2)` and back; mean over time, 2 outputs; float 6b."""
    import torch
    from torch import nn

    q = Q(6, po2=False)
    window = 6

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(3, 8, output_quant=True)
            self.mix = nn.Parameter(torch.randn(window, window) / math.sqrt(window))
            self.mix_quant = q.ident()
            self.mixed_quant = q.ident()
            self.add1_quant = q.ident()
            self.time_fc = q.linear(window, window, output_quant=True)
            self.add2_quant = q.ident()
            self.head = q.linear(8, 2)

        def forward(self, x):
            x = self.embed(self.inp(x))
            x = self.add1_quant(x + self.mixed_quant(self.mix_quant(self.mix) @ x))
            x = self.add2_quant(x + self.time_fc(x.transpose(1, 2)).transpose(1, 2))
            return self.head(x.mean(dim=1))

    torch.manual_seed(seed)
    return Net()


def two_outputs(seed):
    """A shared einsum-attention encoder with two heads: a forecast (regression, 2 values) and a class
    (3 logits), returned as a tuple."""
    import torch
    from torch import nn

    q = Q(6, po2=True)
    M = _modules()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(3, 8, output_quant=True)
            self.attn = M["EinsumAttention"](q, 8, 2, quant_qkv="identity")
            self.add_quant = q.ident()
            self.pool_quant = q.ident()
            self.forecast = q.linear(8, 2)
            self.classify = q.linear(8, 3)

        def forward(self, x):
            x = self.embed(self.inp(x))
            x = self.add_quant(x + self.attn(x))
            z = self.pool_quant(x.mean(dim=1))
            return self.forecast(z), self.classify(z)

    torch.manual_seed(seed)
    return Net()


def outputs_at_two_depths(seed):
    """Three outputs taken at two depths of a float-scale encoder: an auxiliary forecast (default QuantLinear,
    1 value) and the pooled features it reads (a quantiser's output, also returned) after the attention
    block, and the class logits (QuantLinear with an output quantiser, 4 classes) after a further FFN block."""
    import torch
    from torch import nn

    q = Q(8, po2=False)
    M = _modules()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.embed = q.linear(3, 8, output_quant=True)
            self.attn = M["MatmulAttention"](q, 8, 2)
            self.add1_quant = q.ident()
            self.pool1_quant = q.ident()
            self.aux_head = q.linear(8, 1)
            self.fc1 = q.linear(8, 16)
            self.relu = q.relu()
            self.fc2 = q.linear(16, 8)
            self.add2_quant = q.ident()
            self.pool2_quant = q.ident()
            self.classify = q.linear(8, 4, output_quant=True)

        def forward(self, x):
            x = self.embed(self.inp(x))
            x = self.add1_quant(x + self.attn(x))
            features = self.pool1_quant(x.mean(dim=1))
            x = self.add2_quant(x + self.fc2(self.relu(self.fc1(x))))
            logits = self.classify(self.pool2_quant(x.mean(dim=1)))
            return self.aux_head(features), features, logits

    torch.manual_seed(seed)
    return Net()


def layernorm_encoder(seed):
    """The usual Transformer block with nn.LayerNorm (the paper uses BatchNorm for integer inference)."""
    import torch
    from torch import nn

    q = Q(8, po2=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.fc = q.linear(4, 8)
            self.norm = nn.LayerNorm(8)
            self.norm_quant = q.ident()
            self.head = q.linear(8, 1)

        def forward(self, x):
            x = self.norm_quant(self.norm(self.fc(self.inp(x))))
            return self.head(x.mean(dim=1))

    torch.manual_seed(seed)
    return Net()


def gelu_ffn(seed):
    """An FFN with nn.GELU, as in most Transformer code, quantised after the activation."""
    import torch
    from torch import nn

    q = Q(8, po2=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.fc1 = q.linear(4, 16)
            self.gelu = nn.GELU()
            self.act_quant = q.ident()
            self.fc2 = q.linear(16, 2)

        def forward(self, x):
            x = self.act_quant(self.gelu(self.fc1(self.inp(x))))
            return self.fc2(x.mean(dim=1))

    torch.manual_seed(seed)
    return Net()


def conv1d_frontend(seed):
    """A QuantConv1d over time on (B, C, T) data, as time-series models often start."""
    import brevitas.nn as qnn
    import torch
    from torch import nn

    q = Q(6, po2=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = q.ident()
            self.conv = qnn.QuantConv1d(3, 8, kernel_size=3, padding=1, weight_bit_width=6)
            self.act = q.relu()
            self.head = q.linear(8, 1)

        def forward(self, x):
            x = self.act(self.conv(self.inp(x).transpose(1, 2)))
            return self.head(x.mean(dim=2))

    torch.manual_seed(seed)
    return Net()


# ------------------------------------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable  # seed -> torch module
    in_shape: tuple  # (window, features)
    idioms: str
    seed: int = 0

    def model(self):
        """The calibrated model (deterministic: seeded weights and calibration batches)."""
        import torch

        model = self.make(self.seed)
        torch.manual_seed(self.seed + 1000)
        model.train()
        with torch.no_grad():
            for _ in range(8):
                model(torch.randn(16, *self.in_shape) * 1.5)
        return model.eval()


CORPUS = [
    Case(
        "mlp_residual_mean",
        mlp_residual_mean,
        (4, 8),
        "default QuantLinear before residual add; x.mean(dim=1); float 8b",
    ),
    Case(
        "mlp_2bit_pool",
        mlp_2bit_adaptive_pool,
        (6, 6),
        "2-bit po2; AdaptiveAvgPool1d via transpose(1,2) + squeeze(2); 4 classes",
    ),
    Case(
        "pe_buffer_sliced",
        pe_buffer_sliced,
        (8, 3),
        "(1,T,D) sinusoidal buffer sliced pe[:, :T] added to an accumulator; 3 outputs",
    ),
    Case(
        "bn_permute_4bit",
        batchnorm_permute,
        (6, 5),
        "BatchNorm1d via permute(0,2,1); QuantLinear input_quant; po2 4b",
    ),
    Case(
        "bn_transpose_7bit",
        batchnorm_transpose_residual,
        (5, 4),
        "BatchNorm1d via transpose(1,2) after a residual add; float 7b; 3 classes",
    ),
    Case(
        "einsum_1head_po2_6bit",
        einsum_attention_block(1, 6, True, 1, "output"),
        (6, 4),
        "einsum attention, view heads, / sqrt(d); 1 head; po2 6b",
    ),
    Case(
        "einsum_4heads_float_8bit",
        einsum_attention_block(4, 8, False, 5, "output"),
        (4, 4),
        "einsum attention, 4 heads; float 8b; 5 classes",
    ),
    Case(
        "einsum_2heads_unquantised_qkv_5bit",
        einsum_attention_block(2, 5, False, 1, "none"),
        (8, 4),
        "einsum of unquantised Q/K/V accumulators; 2 heads; float 5b",
    ),
    Case(
        "matmul_attention_2heads_5bit",
        matmul_attention_block(2, 5, False),
        (6, 3),
        "q @ k.transpose(-2,-1) / sqrt(d); (p @ v).transpose(1,2).reshape(B,T,D); float 5b",
    ),
    Case(
        "matmul_attention_1head_po2_3bit",
        matmul_attention_block(1, 3, True),
        (4, 3),
        "matmul attention 1 head; po2 3b",
    ),
    Case(
        "tinytransformer_1layer_po2_8bit",
        tiny_transformer(3, 12, 16, 2, 1, 1, 8, True),
        (12, 3),
        "TinyTransformer4TS, 1 layer, 2 heads, regression; po2 8b",
    ),
    Case(
        "tinytransformer_2layers_float_6bit",
        tiny_transformer(6, 8, 16, 4, 2, 6, 6, False),
        (8, 6),
        "TinyTransformer4TS, 2 layers, 4 heads, 6 classes; float 6b",
    ),
    Case(
        "tinytransformer_3layers_po2_4bit",
        tiny_transformer(3, 6, 8, 1, 3, 3, 4, True),
        (6, 3),
        "TinyTransformer4TS, 3 layers, 1 head, 3 outputs; po2 4b",
    ),
    Case(
        "tinytransformer_w24_d32_mixed",
        tiny_transformer(2, 24, 32, 4, 1, 1, 8, False, weight_bits=4),
        (24, 2),
        "TinyTransformer4TS, window 24, d 32, 4-bit weights 8-bit acts",
    ),
    Case(
        "qmha_bf_true_split_1head",
        quant_mha(True, False, 1, 8),
        (6, 3),
        "QuantMultiheadAttention batch_first=True packed_in_proj=False, 1 head",
    ),
    Case(
        "qmha_bf_true_packed_2heads",
        quant_mha(True, True, 2, 8),
        (5, 3),
        "QuantMultiheadAttention batch_first=True packed_in_proj=True, 2 heads",
    ),
    Case(
        "qmha_bf_false_split_4heads",
        quant_mha(False, False, 4, 16),
        (4, 3),
        "QuantMultiheadAttention batch_first=False packed_in_proj=False, 4 heads",
    ),
    Case(
        "qmha_bf_false_packed_2heads_changed",
        quant_mha(False, True, 2, 8, changed=True),
        (6, 3),
        "QuantMultiheadAttention batch_first=False packed_in_proj=True, 2 heads, "
        "quantisers changed (po2, 6-bit weights)",
    ),
    Case(
        "flatten_head_po2_6bit",
        flatten_head,
        (8, 3),
        "nn.Flatten over the window into a classifier, x.view(B, -1), nn.Dropout; po2 6b; 4 classes",
    ),
    Case(
        "token_mixing_w_at_x",
        token_mixing,
        (6, 3),
        "MLP-Mixer token mixing: mix_quant(W) @ x (weights on the left) and a QuantLinear over time via "
        "transpose(1,2); float 6b",
    ),
    Case(
        "two_outputs",
        two_outputs,
        (6, 3),
        "einsum attention encoder, two heads returned as a tuple (regression + classification); po2 6b",
    ),
    Case(
        "outputs_at_two_depths",
        outputs_at_two_depths,
        (6, 3),
        "three outputs at two depths: an auxiliary forecast and the pooled features it reads after attention, "
        "quantised class logits after an FFN block; float 8b",
    ),
]
CASES = {c.name: c for c in CORPUS}
#: Models with layers the hardware does not have (docs/architecture.md): not part of the corpus's bit-exact
#: claim, but fed through the CLI with it, so that a refusal is checked for one clean line naming the node.
REFUSALS = [
    Case("layernorm_encoder", layernorm_encoder, (4, 4), "nn.LayerNorm after a default QuantLinear"),
    Case("gelu_ffn", gelu_ffn, (4, 4), "nn.GELU in the FFN"),
    Case("conv1d_frontend", conv1d_frontend, (8, 3), "QuantConv1d over time, transpose(1, 2) before it"),
]
CASES.update({c.name: c for c in REFUSALS})
#: Exports that fail inside torch, before this tool sees a file: torch.export (the default exporter) cannot
#: trace QuantMultiheadAttention's packed in-projection ("Cannot access data pointer of Tensor (e.g.
#: FakeTensor ...)" in torch 2.13 with brevitas 0.13.4); `dynamo=False` exports it.
EXPORT_FAILURES = {
    (c.name, "dynamo"): "Cannot access data pointer of Tensor"
    for c in CORPUS
    if "packed" in c.name and "qmha" in c.name
}


# ------------------------------------------------------------------------------------------------ running


def export(model, case: Case, exporter: str, path: Path) -> Path:
    """export_qonnx as a user types it: with `dynamo=False`, or with torch's default exporter."""
    import torch
    from brevitas.export import export_qonnx

    x = torch.randn(1, *case.in_shape)
    kwargs = {"dynamo": False} if exporter == "torchscript" else {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        export_qonnx(model, x, str(path), **kwargs)
    return path


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def built(self) -> bool:
        return self.code == 0

    @property
    def first_error(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("qonnx-spartan:")]
        return lines[0] if lines else (self.err.strip().splitlines() or ["(no message)"])[-1]


def cli_build(onnx_path: Path, out: Path, device: str) -> CliRun:
    """`qonnx-spartan build MODEL -o OUT --budget B` in-process, its output captured."""
    from qonnx_spartan.cli import main

    budget = out.parent / f"{out.name}.budget.yaml"
    budget.write_text(f"device: {device}\n")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["build", str(onnx_path), "-o", str(out), "--budget", str(budget)])
    return CliRun(code, stdout.getvalue(), stderr.getvalue())


def inputs_for(case: Case, n: int = VECTORS) -> np.ndarray:
    return np.random.default_rng(case.seed + 7).normal(size=(n, *case.in_shape)).astype(np.float32)


def brevitas_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    """The model's outputs, each (vectors, elements), in the order the model returns them."""
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(x))
    ys = y if isinstance(y, (tuple, list)) else (y,)
    return [np.asarray(getattr(t, "value", t), dtype=np.float64).reshape(len(x), -1) for t in ys]


@dataclass
class Measured:
    vectors: int
    mismatches: int
    cycles: int
    lsb: np.ndarray  # |hardware - Brevitas| in output LSBs (output_lsbs), per vector and output element
    lsb_kind: str  # how the output LSB was found
    design_lsb_max: float  # the same worst difference in the LSB of the design's own output integer

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0

    @property
    def max_lsb(self) -> float:
        return float(self.lsb.max())

    @property
    def mean_lsb(self) -> float:
        return float(self.lsb.mean())

    @property
    def exact_pct(self) -> float:
        return float(100.0 * np.mean(self.lsb < 0.5))


def output_scales(io_) -> np.ndarray:
    """Per output element, the scale the design's integer output is dequantised with (one output today;
    several outputs each their own)."""
    outputs = getattr(io_, "outputs", None) or [io_.output]
    return np.concatenate([np.full(o.count, o.scale) for o in outputs])


def dequantised(io_, hardware: np.ndarray) -> np.ndarray:
    return hardware.astype(np.float64) * output_scales(io_)[None, :]


VIEWS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather")
MEANS = ("ReduceMean", "GlobalAveragePool")


def output_lsbs(onnx_path: Path, x: np.ndarray) -> list[tuple[float, str]]:
    """The LSB each graph output is measured in, from the exported graph (either exporter), with how.

    A quantised output (a Quant last) has its scale.  An unquantised one, Brevitas's default QuantLinear
    head, is an accumulator whose own LSB (input scale x weight scale) is far finer than anything the model
    resolves: one LSB of difference in the head's quantised input moves it by up to max|W| x input scale.
    That step is its LSB here ("one input LSB through the largest weight"); the scales are read from an
    execution of the exported graph, which holds them however the exporter wrote them."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(onnx_path)).transform(InferShapes())
    with contextlib.redirect_stdout(io.StringIO()):  # qonnx prints the exporters' stale Slice shapes
        ctx = execute_onnx(model, {model.graph.input[0].name: x[:1]}, return_full_exec_context=True)

    def producer(t):
        return model.find_producer(t)

    def through_views(t, means=False):
        """The node behind t past views (and means, with the factor they divide an LSB by)."""
        node, factor = producer(t), 1.0
        while node is not None and (node.op_type in VIEWS or means and node.op_type in MEANS):
            if node.op_type in MEANS:
                factor *= np.size(ctx[node.output[0]]) / np.size(ctx[node.input[0]])
            t = node.input[0]
            node = producer(t)
        return (node, factor) if means else node

    lsbs = []
    for out in model.graph.output:
        # a mean at the output (`head(x).mean(dim=1)`) divides the step of the values it averages
        node, out_factor = through_views(out.name, means=True)
        if node is not None and node.op_type == "Quant":
            lsbs.append((float(np.asarray(ctx[node.input[1]]).max()) * out_factor, "output quantiser"))
            continue
        while node is not None and node.op_type == "Add":  # the bias, then a residual or constant add
            node = next((through_views(i) for i in node.input if producer(i) is not None), None)
        if node is None or node.op_type not in ("MatMul", "Gemm", "Conv"):
            raise ValueError(f"{onnx_path.name}: output {out.name} is neither quantised nor a linear layer")
        sides = [through_views(i, means=True) for i in node.input[:2]]
        def constant(q):  # a weight quantiser reads an initializer (an activation's may read the graph input)
            return model.get_initializer(q.input[0]) is not None

        act = [(q, f) for q, f in sides if q is not None and q.op_type == "Quant" and not constant(q)]
        weight = [q for q, _ in sides if q is not None and q.op_type == "Quant" and constant(q)]
        if len(act) != 1 or len(weight) > 1:
            raise ValueError(f"{onnx_path.name}: the linear layer {node.name} before output {out.name} is unusual")
        (q_x, factor), = act
        s_x = float(np.asarray(ctx[q_x.input[1]]).max()) * factor
        w_tensor = weight[0].output[0] if weight else next(i for i, (q, _) in zip(node.input, sides) if q is not q_x)
        w = np.abs(np.asarray(ctx[w_tensor])).max()
        lsbs.append((s_x * float(w) * out_factor, "input LSB x max|W| (unquantised head)"))
    return lsbs


def measure(model, case: Case, onnx_path: Path, build_dir: Path, n: int = VECTORS) -> Measured:
    """One GHDL run over n vectors: bit-exact against the integer reference, and the hardware's outputs
    against Brevitas's in output LSBs."""
    from qonnx_spartan.simulation import simulate_build

    x = inputs_for(case, n)
    report = simulate_build(build_dir, x)
    y_hw = dequantised(report.io, report.hardware)
    ys = brevitas_outputs(model, x)
    y_brevitas = np.concatenate(ys, axis=1)
    if y_hw.shape != y_brevitas.shape:
        raise AssertionError(f"hardware outputs {y_hw.shape} vs Brevitas outputs {y_brevitas.shape}")
    lsbs = output_lsbs(onnx_path, x)
    unit = np.concatenate([np.full(y.shape[1], step) for y, (step, _) in zip(ys, lsbs)])
    lsb = np.abs(y_hw - y_brevitas) / unit[None, :]
    kind = "; ".join(sorted({k for _, k in lsbs}))
    design_lsb = float((np.abs(y_hw - y_brevitas) / output_scales(report.io)[None, :]).max())
    return Measured(
        report.vectors, report.mismatches, report.cycles_per_inference, np.round(lsb, 4), kind, design_lsb
    )


def estimate_totals(build_dir: Path) -> dict:
    import json

    return json.loads((build_dir / "report" / "estimate.json").read_text())


def library_text(text: str) -> list[str]:
    """Lines of a refusal that carry a library's message or a traceback."""
    return [line for line in text.splitlines() if LIBRARY_TEXT.search(line)]


@dataclass
class Outcome:
    """Everything known about one (case, exporter): written by the runner, read by tests and the table."""

    case: str
    exporter: str
    device: str | None = None  # the budget's device the build used
    onnx: Path | None = None
    export_error: str | None = None
    cli: CliRun | None = None
    build_dir: Path | None = None
    measured: Measured | None = None
    sim_error: str | None = None
    notes: list = field(default_factory=list)


def check_measured(o: Outcome) -> None:
    """The corpus's bar for a built and simulated model: GHDL bit-exact on every vector in the estimated
    cycles, and within MAX_LSB of Brevitas."""
    m = o.measured
    assert m.vectors >= VECTORS
    assert m.bit_exact, f"GHDL differs from the integer reference on {m.mismatches} of {m.vectors} vectors"
    assert m.cycles == Design(load_model(o.build_dir / "model_int.onnx")).cycles()
    assert m.max_lsb <= MAX_LSB, (
        f"hardware vs Brevitas: max {m.max_lsb} LSB, mean {m.mean_lsb:.3f}, {m.exact_pct:.0f}% exact"
    )


def export_summary(e: Exception) -> str:
    """The exception's class and its one telling line (torch.export's own summary when it gives one)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1 :]
    return f"{e.__class__.__name__}: {lines[0] if lines else ''}"[:300]


def run_case(case: Case, exporter: str, work: Path, model=None, simulate: bool = True) -> Outcome:
    """Export, build through the CLI, and (if built) simulate and compare; never raises."""
    work.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(case.name, exporter)
    model = model if model is not None else case.model()
    try:
        outcome.onnx = export(model, case, exporter, work / f"{case.name}.{exporter}.onnx")
    except Exception as e:  # an export failure is a fact about the corpus, recorded as such
        outcome.export_error = export_summary(e)
        return outcome
    out = work / f"{case.name}.{exporter}.build"
    for device in DEVICES:  # a model too large for the XC7S15 is built for a larger part
        outcome.device = device
        outcome.cli = cli_build(outcome.onnx, out, device)
        if outcome.cli.built or "does not fit the budget" not in outcome.cli.err:
            break
    if not outcome.cli.built:
        return outcome
    outcome.build_dir = out
    if simulate:
        try:
            outcome.measured = measure(model, case, outcome.onnx, out)
        except Exception as e:
            outcome.sim_error = f"{e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return outcome


def status_line(o: Outcome) -> str:
    """One line of the status file / table for an outcome."""
    if o.export_error:
        return f"export failed: {o.export_error}"
    if o.cli is None or not o.cli.built:
        return f"refused: {o.cli.first_error if o.cli else '?'}"
    if o.sim_error:
        return f"built; simulation failed: {o.sim_error}"
    if o.measured is None:
        return "built (not simulated)"
    m = o.measured
    exact = "bit-exact" if m.bit_exact else f"{m.mismatches}/{m.vectors} MISMATCHED"
    return (
        f"built; GHDL {exact} on {m.vectors} vectors; vs Brevitas max {m.max_lsb:.2f} / mean {m.mean_lsb:.3f} LSB, "
        f"{m.exact_pct:.0f}% exact ({m.lsb_kind}; {m.design_lsb_max:.1f} LSB of the design's output integer); "
        f"{o.device}"
    )
