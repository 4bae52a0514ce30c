"""The op corpus (issue #16): table functions, LayerNorm and Conv1d written the way people write them in
PyTorch and Brevitas, alone and in a small pre-norm encoder, for tests/test_frontend.py's runner.

The widths (3-8 bits) and scale kinds are drawn once from a seeded generator, the weights from each case's
seed: the cases are not tuned to pass.  A case the hardware cannot take is in OP_REFUSALS with the text its
one-line refusal must contain.
"""

from __future__ import annotations

import math
import random
from functools import partial

from frontend_models import Case, Q

#: (bits, po2) per case in order, drawn once: 3-8 bits, power-of-two or float scales.
_DRAW = random.Random(16)


def _width() -> tuple[int, bool]:
    return _DRAW.randint(3, 8), _DRAW.random() < 0.5


# ------------------------------------------------------------------------------------------- activations


def _activations():
    """name -> a factory of the activation as a user writes it (a module, or a function called in forward)."""
    import brevitas.nn as qnn
    import torch.nn.functional as F
    from torch import nn

    return {
        "gelu": lambda q: nn.GELU(),
        "gelu_tanh": lambda q: nn.GELU(approximate="tanh"),
        "silu": lambda q: nn.SiLU(),
        "sigmoid": lambda q: nn.Sigmoid(),
        "tanh": lambda q: nn.Tanh(),
        "hardswish": lambda q: nn.Hardswish(),
        "mish": lambda q: nn.Mish(),
        "elu": lambda q: nn.ELU(),
        "leaky_relu": lambda q: nn.LeakyReLU(),
        "f_gelu": lambda q: F.gelu,  # a function in forward, not a module
        # Brevitas's own quantised activations: the function and its quantiser in one module
        "quant_relu": lambda q: q.relu(),
        "quant_sigmoid": lambda q: qnn.QuantSigmoid(bit_width=q.bits),
        "quant_tanh": lambda q: qnn.QuantTanh(bit_width=q.bits),
        "quant_hardtanh": lambda q: qnn.QuantHardTanh(bit_width=q.bits, max_val=1.0, min_val=-1.0),
    }


#: Brevitas activations that quantise their own output (no QuantIdentity after them).
SELF_QUANTISED = ("quant_relu", "quant_sigmoid", "quant_tanh", "quant_hardtanh")


def activation_ffn(act: str, bits: int, po2: bool, features=4, hidden=8, outputs=2, layout="quantised"):
    """A per-time-step FFN: QuantIdentity, QuantLinear with output quantiser, the activation, its quantiser
    (QuantIdentity, unless a Brevitas activation quantises itself), a default QuantLinear.

    layout "accumulator": the first QuantLinear without output quantiser (the activation of its accumulator);
    "unquantised_into_linear": no quantiser after the activation, the next QuantLinear's input_quant None."""

    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                kw = {} if layout == "accumulator" else {"output_quant": True}
                self.fc1 = q.linear(features, hidden, **kw)
                self.act = _activations()[act](q)
                own = act in SELF_QUANTISED or layout == "unquantised_into_linear"
                self.act_quant = nn.Identity() if own else q.ident()
                self.fc2 = q.linear(hidden, outputs)

            def forward(self, x):
                x = self.act_quant(self.act(self.fc1(self.inp(x))))
                return self.fc2(x)

        torch.manual_seed(seed)
        return Net()

    return make


# --------------------------------------------------------------------------------------------- LayerNorm


def layernorm_block(bits: int, po2: bool, where: str, d=8, features=4, outputs=1, **ln):
    """nn.LayerNorm(d, **ln) on the last axis of (B, T, D):

    "after_linear"  QuantLinear (output quantiser) -> LayerNorm -> QuantIdentity -> mean -> head
    "pre_norm"      x + FFN(LN(x)), the usual pre-norm block (LN's quantiser before the FFN)
    "post_norm"     LN(x + FFN(x)) with the residual sum quantised, then LN's quantiser
    "into_linear"   LayerNorm straight into a QuantLinear with its input quantiser
    "into_linear_unquantised"  LayerNorm straight into a default QuantLinear (input_quant None)
    "post_norm_unquantised_sum"  LN(x + FFN(x)) with the sum not quantised
    """

    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(features, d, output_quant=True)
                self.norm = nn.LayerNorm(d, **ln)
                self.norm_quant = q.ident()
                self.fc1 = q.linear(d, 2 * d, output_quant=True)
                self.act = nn.ReLU()
                self.act_quant = q.ident(signed=False)
                self.fc2 = q.linear(2 * d, d)
                self.res_quant = q.ident()
                self.pool_quant = q.ident()
                if where == "into_linear":
                    self.proj = q.linear(d, outputs, input_quant=True)
                elif where == "into_linear_unquantised":
                    self.proj = q.linear(d, outputs)
                self.head = q.linear(d, outputs)

            def ffn(self, x):
                return self.fc2(self.act_quant(self.act(self.fc1(x))))

            def forward(self, x):
                x = self.embed(self.inp(x))
                if where == "after_linear":
                    x = self.norm_quant(self.norm(x))
                elif where == "pre_norm":
                    x = self.res_quant(x + self.ffn(self.norm_quant(self.norm(x))))
                elif where == "post_norm":
                    x = self.norm_quant(self.norm(self.res_quant(x + self.ffn(x))))
                elif where == "post_norm_unquantised_sum":
                    x = self.norm_quant(self.norm(x + self.ffn(x)))
                else:
                    return self.proj(self.norm(x)).mean(dim=1)
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


# ------------------------------------------------------------------------------------------------ Conv1d


def conv_embedding(bits: int, po2: bool, layout="permute", channels=3, d=8, outputs=1, last=False, **conv):
    """A QuantConv1d token embedding over (B, T, C) data, as time-series models start:
    x.permute(0, 2, 1) ("permute") or x.transpose(1, 2) ("transpose") before it and after it, or the data
    given as (B, C, T) ("channels_first", no view before it); ReLU with its quantiser, a per-step head, the
    mean over time.  `last`: the Conv1d is the model's last layer (its accumulator the output)."""

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                kw = {"weight_quant": q.weight} if po2 else {}
                self.conv = qnn.QuantConv1d(channels, d, weight_bit_width=bits, **kw, **conv)
                self.act = q.relu()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                x = self.inp(x)
                if layout == "permute":
                    x = x.permute(0, 2, 1)
                elif layout == "transpose":
                    x = x.transpose(1, 2)
                x = self.conv(x)
                if last:
                    return x
                x = self.act(x)
                x = x.permute(0, 2, 1) if layout == "permute" else x.transpose(1, 2)
                return self.head(x).mean(dim=1)

        torch.manual_seed(seed)
        return Net()

    return make


def conv_variants(bits: int, po2: bool, kind: str, channels=3, d=8, outputs=1):
    """Conv1d front ends of published time-series models:

    "stacked"   two QuantConv1d (kernel 3, padding 1) with a QuantReLU between, one transpose before and after
    "bn_relu"   QuantConv1d -> BatchNorm1d -> QuantReLU (a TCN / ResNet-1d stem)
    "tcn"       two such blocks, the second with kernel 3 and dilation 2
    "circular"  Informer's TokenEmbedding: kernel 3, padding=1, padding_mode="circular", bias=False
    """

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)
        wq = {"weight_quant": q.weight} if po2 else {}

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                if kind == "circular":
                    self.conv = qnn.QuantConv1d(
                        channels, d, 3, padding=1, padding_mode="circular", bias=False, weight_bit_width=bits, **wq
                    )
                else:
                    self.conv = qnn.QuantConv1d(channels, d, 3, padding=1, weight_bit_width=bits, **wq)
                self.bn = nn.BatchNorm1d(d)
                self.act = q.relu()
                self.conv2 = qnn.QuantConv1d(d, d, 3, padding=1, weight_bit_width=bits, **wq)
                self.conv_dilated = qnn.QuantConv1d(d, d, 3, padding=2, dilation=2, weight_bit_width=bits, **wq)
                self.bn2 = nn.BatchNorm1d(d)
                self.act2 = q.relu()
                self.embed_quant = q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                x = self.inp(x).permute(0, 2, 1)
                if kind == "stacked":
                    x = self.act2(self.conv2(self.act(self.conv(x))))
                elif kind == "bn_relu":
                    x = self.act(self.bn(self.conv(x)))
                elif kind == "tcn":
                    x = self.act2(self.bn2(self.conv_dilated(self.act(self.bn(self.conv(x))))))
                else:
                    x = self.embed_quant(self.conv(x))
                x = x.transpose(1, 2)
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


def more_norms_and_gates(bits: int, po2: bool, kind: str, features=4, d=8, outputs=1):
    """"ln_pooled": LayerNorm of the pooled (B, D) features before the head; "ln_two_axes": LayerNorm over
    (T, D); "glu": a gated unit x * sigmoid(gate) of two projections; "relu6": nn.ReLU6 (a Clip)."""

    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(features, d, output_quant=True)
                self.gate = q.linear(features, d, output_quant=True)
                self.norm = nn.LayerNorm((4, d) if kind == "ln_two_axes" else d)
                self.act = nn.ReLU6()
                self.quant = q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                x = self.inp(x)
                h = self.embed(x)
                if kind == "gelu_transposed":
                    h = self.quant(torch.nn.functional.gelu(self.pool_quant(self.norm(h)).transpose(1, 2)))
                    return self.head(h.mean(dim=2))
                if kind == "ln_pooled":
                    return self.head(self.quant(self.norm(self.pool_quant(h.mean(dim=1)))))
                if kind == "ln_two_axes":
                    h = self.quant(self.norm(h))
                elif kind == "glu":
                    h = self.quant(h * torch.sigmoid(self.gate(x)))
                else:
                    h = self.quant(self.act(h))
                return self.head(self.pool_quant(h.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


def conv_then_elementwise(bits: int, po2: bool, kind: str, channels=3, d=8, outputs=1):
    """A QuantConv1d with its own output quantiser, then in (B, C, T) layout:
    "gelu"  GELU and a quantiser, then x.transpose(1, 2) into a LayerNorm over channels
    "ln_channels"  LayerNorm over channels as ConvNeXt-1d writes it: norm(x.transpose(1, 2)).transpose(1, 2)
    """

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)
        wq = {"weight_quant": q.weight} if po2 else {}

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.conv = qnn.QuantConv1d(
                    channels, d, 3, padding=1, weight_bit_width=bits, output_quant=q.act, output_bit_width=bits, **wq
                )
                self.gelu, self.gelu_quant = nn.GELU(), q.ident()
                self.norm, self.norm_quant = nn.LayerNorm(d), q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                x = self.conv(self.inp(x).transpose(1, 2))
                if kind == "gelu":
                    x = self.norm_quant(self.norm(self.gelu_quant(self.gelu(x)).transpose(1, 2)))
                else:
                    x = self.norm_quant(self.norm(x.transpose(1, 2)).transpose(1, 2)).transpose(1, 2)
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


def brevitas_idioms(bits: int, po2: bool, kind: str, channels=3, d=8, outputs=1):
    """Brevitas's own idioms around the new ops:
    "quant_tensors"  return_quant_tensor=True throughout (QuantTensors into nn.GELU and nn.LayerNorm)
    "conv_input_quant"  the first layer a QuantConv1d with its own input_quant (no QuantIdentity before it)
    """

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)
        wq = {"weight_quant": q.weight} if po2 else {}
        rq = {"return_quant_tensor": True} if kind == "quant_tensors" else {}

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident(**rq)
                self.conv = qnn.QuantConv1d(
                    channels, d, 3, padding=1, weight_bit_width=bits, input_quant=q.act, input_bit_width=bits, **wq
                )
                self.conv_quant = q.ident(**rq)
                self.fc = q.linear(channels, d, output_quant=True, **rq)
                self.gelu, self.gelu_quant = nn.GELU(), q.ident(**rq)
                self.norm, self.norm_quant = nn.LayerNorm(d), q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                if kind == "conv_input_quant":
                    x = self.conv_quant(self.conv(x.transpose(1, 2))).transpose(1, 2)
                else:
                    x = self.fc(self.inp(x))
                x = self.norm_quant(self.norm(self.gelu_quant(self.gelu(x))))
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


# ---------------------------------------------------------------------------------------------- encoder


def prenorm_encoder(bits: int, po2: bool, layers: int, features=3, d=8, heads=2, outputs=1):
    """A small pre-norm Transformer encoder written from scratch: a Conv1d token embedding (kernel 3,
    padding 1), per layer x + Attn(LN(x)) and x + FFN(LN(x)) with a GELU FFN, a final LayerNorm, the mean
    over time and a linear head.  A quantiser after every op that makes a new activation."""

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)
        wq = {"weight_quant": q.weight} if po2 else {}

        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads, self.d_head = heads, d // heads
                self.query = q.linear(d, d, output_quant=True)
                self.key = q.linear(d, d, output_quant=True)
                self.value = q.linear(d, d, output_quant=True)
                self.prob_quant = q.ident(signed=False)
                self.context_quant = q.ident()
                self.proj = q.linear(d, d)

            def forward(self, x):
                B, T, D = x.shape
                q_ = self.query(x).view(B, T, self.heads, self.d_head).transpose(1, 2)
                k = self.key(x).view(B, T, self.heads, self.d_head).transpose(1, 2)
                v = self.value(x).view(B, T, self.heads, self.d_head).transpose(1, 2)
                att = torch.softmax(q_ @ k.transpose(-2, -1) / math.sqrt(self.d_head), dim=-1)
                y = (self.prob_quant(att) @ v).transpose(1, 2).reshape(B, T, D)
                return self.proj(self.context_quant(y))

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln1_quant = nn.LayerNorm(d), q.ident()
                self.attn = Attention()
                self.res1_quant = q.ident()
                self.ln2, self.ln2_quant = nn.LayerNorm(d), q.ident()
                self.fc1 = q.linear(d, 2 * d, output_quant=True)
                self.gelu, self.gelu_quant = nn.GELU(), q.ident()
                self.fc2 = q.linear(2 * d, d)
                self.res2_quant = q.ident()

            def forward(self, x):
                x = self.res1_quant(x + self.attn(self.ln1_quant(self.ln1(x))))
                h = self.gelu_quant(self.gelu(self.fc1(self.ln2_quant(self.ln2(x)))))
                return self.res2_quant(x + self.fc2(h))

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = qnn.QuantConv1d(features, d, 3, padding=1, weight_bit_width=bits, **wq)
                self.embed_quant = q.ident()
                self.blocks = nn.ModuleList(Block() for _ in range(layers))
                self.ln_f, self.ln_f_quant = nn.LayerNorm(d), q.ident()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                x = self.embed_quant(self.embed(self.inp(x).transpose(1, 2))).transpose(1, 2)
                for block in self.blocks:
                    x = block(x)
                x = self.ln_f_quant(self.ln_f(x))
                return self.head(self.pool_quant(x.mean(dim=1)))

        torch.manual_seed(seed)
        return Encoder()

    return make


# ------------------------------------------------------------------------------------------------ corpus


def _activation_cases():
    cases = []
    for i, act in enumerate(
        (
            "gelu",
            "gelu_tanh",
            "silu",
            "sigmoid",
            "tanh",
            "hardswish",
            "mish",
            "elu",
            "leaky_relu",
            "f_gelu",
            "quant_relu",
            "quant_sigmoid",
            "quant_tanh",
            "quant_hardtanh",
        )
    ):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        cases.append(
            Case(
                f"act_{act}_{scale}_{bits}bit",
                activation_ffn(act, bits, po2),
                (5, 4),
                f"{act} between QuantLinear(output_quant) and its quantiser; {scale} {bits}b",
                seed=100 + i,
            )
        )
    return cases


def _layernorm_cases():
    variants = (
        ("ln_after_linear", "after_linear", {}),
        ("ln_no_affine", "after_linear", {"elementwise_affine": False}),
        ("ln_bias_false", "after_linear", {"bias": False}),
        ("ln_eps_1e-6", "after_linear", {"eps": 1e-6}),
        ("ln_eps_1e-2", "pre_norm", {"eps": 1e-2}),
        ("ln_pre_norm", "pre_norm", {}),
        ("ln_post_norm", "post_norm", {}),
        ("ln_into_quantlinear_input_quant", "into_linear", {}),
    )
    cases = []
    for i, (name, where, ln) in enumerate(variants):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        cases.append(
            Case(
                f"{name}_{scale}_{bits}bit",
                layernorm_block(bits, po2, where, **ln),
                (4, 4),
                f"nn.LayerNorm(d, {ln}) {where}; {scale} {bits}b",
                seed=200 + i,
            )
        )
    return cases


def _conv_cases():
    variants = (
        ("conv_k3_pad1_permute", "permute", {"kernel_size": 3, "padding": 1}),
        ("conv_k3_same_transpose", "transpose", {"kernel_size": 3, "padding": "same"}),
        ("conv_k3_stride2", "permute", {"kernel_size": 3, "stride": 2}),
        ("conv_k3_dilation2_pad2", "transpose", {"kernel_size": 3, "dilation": 2, "padding": 2}),
        ("conv_k2_no_bias", "permute", {"kernel_size": 2, "bias": False}),
        ("conv_1x1", "permute", {"kernel_size": 1}),
    )
    cases = []
    for i, (name, layout, conv) in enumerate(variants):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        shape = (3, 8) if layout == "channels_first" else (8, 3)
        cases.append(
            Case(
                f"{name}_{scale}_{bits}bit",
                conv_embedding(bits, po2, layout, **conv),
                shape,
                f"QuantConv1d({conv}) {layout}; {scale} {bits}b",
                seed=300 + i,
            )
        )
    bits, po2 = _width()
    cases.append(
        Case(
            f"conv_last_layer_{'po2' if po2 else 'float'}_{bits}bit",
            conv_embedding(bits, po2, "transpose", last=True, kernel_size=3, padding=1),
            (8, 3),
            "QuantConv1d as the last layer (its accumulator the output)",
            seed=310,
        )
    )
    return cases


def _more_cases():
    cases = []
    for i, kind in enumerate(("ln_pooled", "relu6")):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        cases.append(Case(f"{kind}_{scale}_{bits}bit", more_norms_and_gates(bits, po2, kind), (4, 4), kind, seed=600 + i))
    return cases


def _encoder_cases():
    cases = []
    for layers in (1, 2):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        cases.append(
            Case(
                f"prenorm_encoder_{layers}layer_{scale}_{bits}bit",
                prenorm_encoder(bits, po2, layers),
                (6, 3),
                f"pre-norm encoder from scratch: Conv1d embedding, LayerNorm, attention, GELU FFN; {layers} layer(s)",
                seed=400 + layers,
            )
        )
    return cases


def _conv_stack_cases():
    bits, po2 = _width()
    scale = "po2" if po2 else "float"
    return [
        Case(
            f"conv_stacked_{scale}_{bits}bit",
            conv_variants(bits, po2, "stacked"),
            (8, 3),
            f"two QuantConv1d in a row (the second reads the first's (B, C, T) output); {scale} {bits}b",
            seed=508,
        )
    ]


#: (name, model factory of (bits, po2), idioms) of the cases drawn after the others
LATE = (
    (
        "conv_ln_over_channels",
        lambda bits, po2: conv_then_elementwise(bits, po2, "ln_channels"),
        "QuantConv1d(output_quant), norm(x.transpose(1, 2)).transpose(1, 2) (ConvNeXt-1d)",
    ),
    (
        "quant_tensors_gelu_ln",
        lambda bits, po2: brevitas_idioms(bits, po2, "quant_tensors"),
        "return_quant_tensor=True: QuantTensors into nn.GELU and nn.LayerNorm",
    ),
    (
        "conv_own_input_quant",
        lambda bits, po2: brevitas_idioms(bits, po2, "conv_input_quant"),
        "the first layer a QuantConv1d with its own input_quant on x.transpose(1, 2)",
    ),
    (
        "conv_gelu_then_transpose",
        lambda bits, po2: conv_then_elementwise(bits, po2, "gelu"),
        "QuantConv1d(output_quant) -> GELU -> quantiser in (B, C, T), then transpose(1, 2) into a LayerNorm",
    ),
)


def _late_cases():
    """Drawn after the others, so that adding them kept the earlier cases' widths."""
    cases = []
    for i, (name, make, idioms) in enumerate(LATE):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        cases.append(Case(f"{name}_{scale}_{bits}bit", make(bits, po2), (8, 3), f"{idioms}; {scale} {bits}b", seed=700 + i))
    return cases


def heads_and_inputs(bits: int, po2: bool, kind: str, features=3, d=8, outputs=2):
    """How a forecaster's head reads the sequence, and how its input arrives.  "last_step": the head on
    x[:, -1] (a Gather); "first_step": on x[:, 0] of an encoder block; "last_steps_flatten":
    x[:, -3:].flatten(1) (a Slice); "last_steps_mean": x[:, 2:].mean(dim=1); "learned_pe": a learned
    (1, T, d) nn.Parameter added to the embedding; "univariate": a (B, T) series, x.unsqueeze(-1) into
    QuantLinear(1, d); "max_pool": x.max(dim=1); "relu_of_step": a QuantReLU of x[:, 0]; "class_token": a
    learned class token joined with torch.cat."""

    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2)
        steps = 6

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.embed = q.linear(1 if kind == "univariate" else features, d)
                self.pos = nn.Parameter(torch.randn(1, steps, d) * 0.3)
                self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.3)
                self.quant = q.ident()
                self.ffn = q.linear(d, d)
                self.relu = q.relu()
                self.pool_quant = q.ident()
                self.head = q.linear(3 * d if kind == "last_steps_flatten" else d, outputs)

            def forward(self, x):
                x = self.inp(x)
                if kind == "univariate":
                    x = x.unsqueeze(-1)
                h = self.embed(x)
                if kind == "learned_pe":
                    h = h + self.pos
                if kind == "class_token":
                    h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
                h = self.quant(h)
                if kind == "first_step":
                    h = self.quant(h + self.relu(self.ffn(h)))
                    return self.head(h[:, 0])
                if kind == "last_step":
                    return self.head(self.relu(self.ffn(h))[:, -1, :])
                if kind == "last_steps_flatten":
                    return self.head(h[:, -3:, :].flatten(1))
                if kind == "last_steps_mean":
                    return self.head(self.pool_quant(h[:, 2:].mean(dim=1)))
                if kind == "max_pool":
                    return self.head(h.max(dim=1).values)
                if kind == "relu_of_step":
                    return self.head(self.relu(h[:, 0]))
                return self.head(self.pool_quant(self.relu(self.ffn(h)).mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


def linear_batchnorm(bits: int, po2: bool, kind: str, features=3, d=8, outputs=2):
    """BatchNorm1d straight after a default QuantLinear (no quantiser between), then a QuantReLU: "time":
    over (B, T, D) through transpose(1, 2); "flat": an MLP over (B, F) with bias=False before the norm."""

    def make(seed):
        import torch
        from torch import nn

        q = Q(bits, po2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = q.ident()
                self.fc = q.linear(features if kind == "time" else 4 * features, d, bias=kind == "time")
                self.bn = nn.BatchNorm1d(d)
                self.act = q.relu()
                self.pool_quant = q.ident()
                self.head = q.linear(d, outputs)

            def forward(self, x):
                h = self.fc(self.inp(x))
                if kind == "flat":
                    return self.head(self.act(self.bn(h)))
                h = self.act(self.bn(h.transpose(1, 2)).transpose(1, 2))
                return self.head(self.pool_quant(h.mean(dim=1)))

        torch.manual_seed(seed)
        return Net()

    return make


#: Heads and inputs of forecasters as people write them (drawn after LATE, keeping the earlier draws).
SELECTIONS = ("last_step", "first_step", "last_steps_flatten", "last_steps_mean", "learned_pe", "univariate")


def _selection_cases():
    cases = []
    for i, kind in enumerate(SELECTIONS):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        in_shape = (6,) if kind == "univariate" else (6, 3)
        make = heads_and_inputs(bits, po2, kind)
        cases.append(Case(f"{kind}_{scale}_{bits}bit", make, in_shape, f"{kind}; {scale} {bits}b", seed=800 + i))
    return cases


def cnn_classifier(bits: int, po2: bool, kind: str, channels=3, d=8, classes=4):
    """A 1-D CNN classifier as written for sensor data: "gap": two QuantConv1d + QuantReLU on (B, C, T),
    AdaptiveAvgPool1d(1), flatten, a QuantLinear to the logits; "softmax": a QuantLinear head with its
    output_quant, nn.Softmax and an unsigned quantiser after it; "input_norm": "gap" with (x - mean) / std
    per feature in forward before the input quantiser."""

    def make(seed):
        import brevitas.nn as qnn
        import torch
        from torch import nn

        q = Q(bits, po2)
        wq = {"weight_quant": q.weight} if po2 else {}

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", torch.linspace(-0.5, 0.5, channels))
                self.register_buffer("std", torch.linspace(0.5, 2.0, channels))
                self.inp = q.ident()
                self.conv1 = qnn.QuantConv1d(channels, d, 3, padding=1, weight_bit_width=bits, **wq)
                self.act1 = q.relu()
                self.conv2 = qnn.QuantConv1d(d, d, 3, padding=1, weight_bit_width=bits, **wq)
                self.act2 = q.relu()
                self.pool = nn.AdaptiveAvgPool1d(1)
                self.pool_quant = q.ident()
                self.head = q.linear(d, classes, output_quant=kind == "softmax")
                self.softmax = nn.Softmax(dim=-1)
                self.prob_quant = q.ident(signed=False)

            def forward(self, x):
                if kind == "input_norm":
                    x = (x - self.mean) / self.std
                x = self.inp(x).transpose(1, 2)
                x = self.act2(self.conv2(self.act1(self.conv1(x))))
                logits = self.head(self.pool_quant(torch.flatten(self.pool(x), 1)))
                return self.prob_quant(self.softmax(logits)) if kind == "softmax" else logits

        torch.manual_seed(seed)
        return Net()

    return make


def _batchnorm_cases():
    """BatchNorm1d with no quantiser before it (drawn last, keeping the earlier draws)."""
    made = (
        ("conv_bn_relu", partial(conv_variants, kind="bn_relu"), (8, 3), "QuantConv1d -> BatchNorm1d -> QuantReLU"),
        ("tcn_blocks", partial(conv_variants, kind="tcn"), (12, 3), "two Conv1d-BatchNorm1d-QuantReLU blocks"),
        ("linear_bn_time", partial(linear_batchnorm, kind="time"), (6, 3), "QuantLinear -> BatchNorm1d -> QuantReLU"),
        ("mlp_bn", partial(linear_batchnorm, kind="flat"), (12,), "QuantLinear(bias=False) -> BatchNorm1d on (B, F)"),
        ("cnn_gap", partial(cnn_classifier, kind="gap"), (8, 3), "Conv1d classifier, AdaptiveAvgPool1d(1), flatten"),
        ("cnn_softmax", partial(cnn_classifier, kind="softmax"), (8, 3), "the same with nn.Softmax and a quantiser"),
        ("cnn_input_norm", partial(cnn_classifier, kind="input_norm"), (8, 3), "(x - mean) / std in forward"),
    )
    cases = []
    for i, (name, make, in_shape, idioms) in enumerate(made):
        bits, po2 = _width()
        scale = "po2" if po2 else "float"
        idioms = f"{idioms}; {scale} {bits}b"
        cases.append(Case(f"{name}_{scale}_{bits}bit", make(bits, po2), in_shape, idioms, seed=820 + i))
    return cases


OP_CORPUS = (
    _activation_cases()
    + _layernorm_cases()
    + _conv_cases()
    + _more_cases()
    + _encoder_cases()
    + _conv_stack_cases()
    + _late_cases()
    + _selection_cases()
    + _batchnorm_cases()
)

#: Cases the hardware has no form for, with a text their one-line refusal must contain.
OP_REFUSALS = [
    (
        Case(
            "act_gelu_of_accumulator",
            activation_ffn("gelu", 6, False, layout="accumulator"),
            (5, 4),
            "nn.GELU of a default QuantLinear's accumulator, then a quantiser",
            seed=500,
        ),
        "QuantIdentity",
    ),
    (
        Case(
            "act_gelu_unquantised_into_linear",
            activation_ffn("gelu", 6, True, layout="unquantised_into_linear"),
            (5, 4),
            "nn.GELU with no quantiser after it, then a default QuantLinear (input_quant None)",
            seed=501,
        ),
        "QuantIdentity",
    ),
    (
        Case(
            "ln_into_quantlinear_unquantised",
            layernorm_block(6, False, "into_linear_unquantised"),
            (4, 4),
            "nn.LayerNorm straight into a default QuantLinear (input_quant None)",
            seed=502,
        ),
        "QuantIdentity",
    ),
    (
        Case(
            "ln_post_norm_unquantised_sum",
            layernorm_block(6, True, "post_norm_unquantised_sum"),
            (4, 4),
            "LN(x + FFN(x)) with the residual sum not quantised",
            seed=503,
        ),
        "QuantIdentity",
    ),
    (
        Case("ln_two_axes", more_norms_and_gates(6, False, "ln_two_axes"), (4, 4), "nn.LayerNorm((T, D))", seed=505),
        "nn.LayerNorm(d) of (batch, time, d)",
    ),
    (
        Case("glu_gate", more_norms_and_gates(6, False, "glu"), (4, 4), "x * sigmoid(gate(x))", seed=506),
        "QuantIdentity",
    ),
    (
        Case(
            "conv_channels_first",
            conv_embedding(6, False, "channels_first", kernel_size=3, padding=1),
            (3, 8),
            "QuantConv1d (kernel 3) straight on (B, C, T) data",
            seed=507,
        ),
        "transpose(1, 2)",
    ),
    (
        Case(
            "conv_circular",
            conv_variants(6, False, "circular"),
            (8, 3),
            "Informer's TokenEmbedding: padding_mode='circular'",
            seed=510,
        ),
        "padding_mode='zeros'",
    ),
    (
        Case(
            "gelu_of_transposed_layernorm",
            more_norms_and_gates(6, False, "gelu_transposed"),
            (4, 4),
            "GELU of a LayerNorm's result read through x.transpose(1, 2)",
            seed=700,
        ),
        "transpose after this op instead",
    ),
    (
        Case("max_pool", heads_and_inputs(6, False, "max_pool"), (6, 3), "x.max(dim=1) over time", seed=810),
        "x.mean(dim=1)",
    ),
    (
        Case("relu_of_step", heads_and_inputs(6, False, "relu_of_step"), (6, 3), "QuantReLU of x[:, 0]", seed=811),
        "index after this op",
    ),
    (
        Case("class_token", heads_and_inputs(6, True, "class_token"), (6, 3), "torch.cat of a class token", seed=812),
        "class token",
    ),
    (
        Case(
            "conv_groups2",
            conv_embedding(6, False, "permute", channels=4, kernel_size=3, padding=1, groups=2),
            (8, 4),
            "QuantConv1d with groups=2",
            seed=504,
        ),
        "groups",
    ),
]
