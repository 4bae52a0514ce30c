"""The paper's integer-only forecasting Transformer (arXiv 2407.11041 / 2410.03294) in Brevitas.

One post-norm encoder layer with BatchNorm instead of LayerNorm (no division or square root at
inference).  The variant most time-series Transformers since 2023 use is `build_model(..., norm="layer",
act="gelu", embed="conv")`: a pre-norm encoder layer with LayerNorm (and one after it), a GELU FFN and a
Conv1d token embedding (kernel 3, "same" padding), each between quantisers (IntLayerNorm, IntTable,
IntConv1d in the hardware). Attention is written by hand, with a quantiser after every operation that produces a new
activation, so the QONNX export is a plain chain of Quant / MatMul / Gemm / Add / Mul / Reshape /
Transpose / Softmax / BatchNormalization / Relu / ReduceMean that an integer lowering can walk:
every tensor entering an arithmetic op comes from a Quant node, possibly through Reshape/Transpose.
Shapes other than the batch are Python ints, so the export has no Shape/Gather/Concat arithmetic.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Factory:
    """Builds each layer quantised or float, with the bit widths a mixed-precision plan asks for."""

    def __init__(self, bits: int, plan: dict | None, po2: bool, quant: bool):
        self.bits = bits
        self.plan = dict(plan or {})
        self.quant = quant
        if po2:
            from brevitas.quant import Int8ActPerTensorFixedPoint as SignedAct
            from brevitas.quant import Int8WeightPerTensorFixedPoint as Weight
            from brevitas.quant import Uint8ActPerTensorFixedPoint as UnsignedAct
        else:
            from brevitas.quant import Int8ActPerTensorFloat as SignedAct
            from brevitas.quant import Int8WeightPerTensorFloat as Weight
            from brevitas.quant import Uint8ActPerTensorFloat as UnsignedAct
        self.signed_act, self.weight, self.unsigned_act = SignedAct, Weight, UnsignedAct
        self.names: set[str] = set()  # quantised modules built so far, for check_plan

    def _bits(self, name: str, key: str, default: int) -> int:
        self.names.add(name)
        return int(self.plan.get(name, {}).get(key, default))

    def linear(self, name: str, n_in: int, n_out: int, quant_output: bool = True) -> nn.Module:
        """Linear layer; its output is quantised by its own ``output_quant`` unless the next module
        (a QuantReLU) quantises it, so the accumulator is not rounded twice."""
        if not self.quant:
            return nn.Linear(n_in, n_out)
        import brevitas.nn as qnn

        out = {}
        if quant_output:
            out = dict(output_quant=self.signed_act, output_bit_width=self._bits(name, "act_bits", self.bits))
        return qnn.QuantLinear(
            n_in,
            n_out,
            bias=True,
            weight_quant=self.weight,
            weight_bit_width=self._bits(name, "weight_bits", self.bits),
            **out,
        )

    def conv1d(self, name: str, n_in: int, n_out: int, kernel: int) -> nn.Module:
        """Conv1d over time with "same" padding and its output quantiser (the token embedding)."""
        if not self.quant:
            return nn.Conv1d(n_in, n_out, kernel, padding=kernel // 2)
        import brevitas.nn as qnn

        return qnn.QuantConv1d(
            n_in,
            n_out,
            kernel,
            padding=kernel // 2,
            bias=True,
            weight_quant=self.weight,
            weight_bit_width=self._bits(name, "weight_bits", self.bits),
            output_quant=self.signed_act,
            output_bit_width=self._bits(name, "act_bits", self.bits),
        )

    def act(self, name: str, signed: bool = True) -> nn.Module:
        if not self.quant:
            return nn.Identity()
        import brevitas.nn as qnn

        return qnn.QuantIdentity(
            act_quant=self.signed_act if signed else self.unsigned_act,
            bit_width=self._bits(name, "act_bits", self.bits),
        )

    def relu(self, name: str) -> nn.Module:
        if not self.quant:
            return nn.ReLU()
        import brevitas.nn as qnn

        return qnn.QuantReLU(act_quant=self.unsigned_act, bit_width=self._bits(name, "act_bits", self.bits))

    def check_plan(self) -> None:
        """A plan naming a module that does not exist is a typo: fail instead of ignoring it.
        (ffn1's ``act_bits`` is accepted and unused: ffn_relu quantises that output.)"""
        unknown = sorted(set(self.plan) - self.names)
        if unknown:
            raise ValueError(f"plan names unknown quantised modules: {unknown}; known: {sorted(self.names)}")


def sinusoidal_encoding(window: int, d_model: int) -> torch.Tensor:
    """The fixed (Vaswani et al.) positional encoding, (window, d_model)."""
    pos = torch.arange(window, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(window, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return pe


class Embedding(nn.Module):
    """Per-time-step linear projection (or a Conv1d over time, `conv`) plus the quantised positional
    encoding."""

    def __init__(self, f: _Factory, window: int, features: int, d_model: int, conv: bool = False):
        super().__init__()
        self.conv = conv
        self.proj = f.conv1d("embed.proj", features, d_model, 3) if conv else f.linear("embed.proj", features, d_model)
        self.register_buffer("pe", sinusoidal_encoding(window, d_model))
        self.pe_quant = f.act("embed.pe_quant")
        self.quant = f.act("embed.quant")

    def forward(self, x):
        tokens = self.proj(x.transpose(1, 2)).transpose(1, 2) if self.conv else self.proj(x)
        return self.quant(tokens + self.pe_quant(self.pe))


class EncoderLayer(nn.Module):
    """Post-norm encoder layer: attention, add, BatchNorm, FFN (d -> 4d -> d), add, BatchNorm.  With
    norm="layer" pre-norm: LayerNorm before the attention and before the FFN, on the residual path's input;
    act="gelu": the FFN's activation is a GELU between quantisers."""

    def __init__(self, f: _Factory, window: int, d_model: int, heads: int, norm: str = "batch", act: str = "relu"):
        super().__init__()
        self.pre_norm, self.gelu = norm == "layer", act == "gelu"
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.window, self.d_model, self.heads = window, d_model, heads
        self.d_head = d_model // heads
        # Applied as a Mul after Q K^T (the authors' code forgot it; see REFERENCE.md).
        self.scale = 1.0 / math.sqrt(self.d_head)
        p = "encoder."
        self.q_proj = f.linear(p + "q_proj", d_model, d_model)
        self.k_proj = f.linear(p + "k_proj", d_model, d_model)
        self.v_proj = f.linear(p + "v_proj", d_model, d_model)
        self.score_quant = f.act(p + "score_quant")
        self.softmax_quant = f.act(p + "softmax_quant", signed=False)
        self.context_quant = f.act(p + "context_quant")
        self.out_proj = f.linear(p + "out_proj", d_model, d_model)
        self.attn_add_quant = f.act(p + "attn_add_quant")
        self.norm1 = nn.LayerNorm(d_model) if self.pre_norm else nn.BatchNorm1d(d_model)
        self.norm1_quant = f.act(p + "norm1_quant")
        self.ffn1 = f.linear(p + "ffn1", d_model, 4 * d_model, quant_output=self.gelu)
        if self.gelu:  # a function between quantisers: ffn1's output quantiser, then GELU's
            self.ffn_act = nn.Sequential(nn.GELU(), f.act(p + "ffn_gelu_quant"))
        else:
            self.ffn_relu = f.relu(p + "ffn_relu")
        self.ffn2 = f.linear(p + "ffn2", 4 * d_model, d_model)
        self.ffn_add_quant = f.act(p + "ffn_add_quant")
        self.norm2 = nn.LayerNorm(d_model) if self.pre_norm else nn.BatchNorm1d(d_model)
        self.norm2_quant = f.act(p + "norm2_quant")

    def _heads(self, x):
        """(B, W, d) -> (B, H, W, d_head); -1 for the batch keeps the shape a constant in the export."""
        return x.reshape(-1, self.window, self.heads, self.d_head).permute(0, 2, 1, 3)

    def _norm(self, bn, x):
        """BatchNorm over d_model of every (batch, time) row: (B*W, d) is BatchNorm1d's (N, C)."""
        return bn(x.reshape(-1, self.d_model)).reshape(-1, self.window, self.d_model)

    def attention(self, x):
        q = self._heads(self.q_proj(x))
        k_t = self.k_proj(x).reshape(-1, self.window, self.heads, self.d_head).permute(0, 2, 3, 1)
        v = self._heads(self.v_proj(x))
        scores = self.score_quant(torch.matmul(q, k_t) * self.scale)
        probs = self.softmax_quant(torch.softmax(scores, dim=-1))
        context = self.context_quant(torch.matmul(probs, v))
        return self.out_proj(context.permute(0, 2, 1, 3).reshape(-1, self.window, self.d_model))

    def ffn(self, x):
        return self.ffn2(self.ffn_act(self.ffn1(x)) if self.gelu else self.ffn_relu(self.ffn1(x)))

    def forward(self, x):
        if self.pre_norm:
            x = self.attn_add_quant(x + self.attention(self.norm1_quant(self.norm1(x))))
            return self.ffn_add_quant(x + self.ffn(self.norm2_quant(self.norm2(x))))
        x = self.attn_add_quant(x + self.attention(x))
        x = self.norm1_quant(self._norm(self.norm1, x))
        x = self.ffn_add_quant(x + self.ffn(x))
        return self.norm2_quant(self._norm(self.norm2, x))


class Forecaster(nn.Module):
    """(B, window, features) -> (B, 1): next-step value of the target feature (normalised)."""

    def __init__(
        self,
        window: int,
        features: int,
        d_model: int,
        heads: int,
        bits: int,
        plan: dict | None = None,
        po2: bool = False,
        quant: bool = True,
        norm: str = "batch",
        act: str = "relu",
        embed: str = "linear",
    ):
        super().__init__()
        f = _Factory(bits, plan, po2, quant)
        self.input_quant = f.act("input_quant")
        self.embed = Embedding(f, window, features, d_model, conv=embed == "conv")
        self.encoder = EncoderLayer(f, window, d_model, heads, norm=norm, act=act)
        self.final_norm = None
        if norm == "layer":  # a pre-norm encoder ends with a norm of its own
            self.final_norm = nn.Sequential(nn.LayerNorm(d_model), f.act("final_norm_quant"))
        self.pool_quant = f.act("pool_quant")
        # The output has the model's width like every other tensor (a plan may widen it): a finer output LSB
        # than the hidden tensors' would only measure how far a 1-LSB difference inside travels.
        self.head = f.linear("head", d_model, 1)
        if quant:
            f.check_plan()
        self.config = dict(
            window=window, features=features, d_model=d_model, heads=heads, bits=bits, plan=plan, po2=po2, quant=quant
        )
        if (norm, act, embed) != ("batch", "relu", "linear"):
            self.config.update(norm=norm, act=act, embed=embed)

    def forward(self, x):
        x = self.encoder(self.embed(self.input_quant(x)))
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.head(self.pool_quant(x.mean(dim=1)))


def build_model(
    window: int,
    features: int,
    d_model: int,
    heads: int,
    bits: int,
    plan: dict | None = None,
    quant: bool = True,
    po2: bool = False,
    norm: str = "batch",
    act: str = "relu",
    embed: str = "linear",
) -> Forecaster:
    """The forecaster; ``plan`` maps module names (``model.named_modules()``) to
    ``{"weight_bits": int, "act_bits": int}`` and overrides ``bits`` for that module.
    ``quant=False`` gives the same module tree with float torch layers (the float baseline).
    norm "batch" | "layer" (post-norm BatchNorm, pre-norm LayerNorm), act "relu" | "gelu", embed "linear" |
    "conv" (a Conv1d token embedding)."""
    variant = {"norm": (norm, ("batch", "layer")), "act": (act, ("relu", "gelu")), "embed": (embed, ("linear", "conv"))}
    for key, (value, allowed) in variant.items():
        if value not in allowed:
            raise ValueError(f"{key} {value!r}: one of {', '.join(allowed)}")
    return Forecaster(
        window, features, d_model, heads, bits, plan=plan, po2=po2, quant=quant, norm=norm, act=act, embed=embed
    )
