"""Small Brevitas models exported to QONNX, for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def calibrated(model, in_shape, steps=8, batch=16):
    """Let Brevitas settle the activation scales on random inputs (train mode), then freeze (eval)."""
    import torch

    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, *in_shape) * 1.5)
    model.eval()
    return model


def quantisers(po2: bool):
    """(signed activation, unsigned activation, weight) quantisers, per tensor: Brevitas's fixed-point ones
    (power-of-two scales) or its float-scale defaults."""
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8ActPerTensorFloat,
        Int8WeightPerTensorFixedPoint,
        Int8WeightPerTensorFloat,
        Uint8ActPerTensorFixedPoint,
        Uint8ActPerTensorFloat,
    )

    if po2:
        return Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
    return Int8ActPerTensorFloat, Uint8ActPerTensorFloat, Int8WeightPerTensorFloat


def make_mlp(sizes, bits, po2=False, bias=True, out_quant=False, seed=0):
    """QuantIdentity -> (QuantLinear -> QuantReLU)* -> QuantLinear [-> output quantiser], calibrated."""
    import brevitas.nn as qnn
    import torch

    torch.manual_seed(seed)
    act, uact, weight = quantisers(po2)
    layers = [qnn.QuantIdentity(act_quant=act, bit_width=bits, return_quant_tensor=True)]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        kwargs = {"output_quant": act, "output_bit_width": bits} if (last and out_quant) else {}
        layers.append(
            qnn.QuantLinear(
                n_in,
                n_out,
                bias=bias,
                weight_quant=weight,
                weight_bit_width=bits,
                return_quant_tensor=not last,
                **kwargs,
            )
        )
        if not last:
            layers.append(qnn.QuantReLU(act_quant=uact, bit_width=bits, return_quant_tensor=True))
    return calibrated(torch.nn.Sequential(*layers), (sizes[0],), batch=64)


def export(model, path: Path, in_shape) -> Path:
    import torch
    from brevitas.export import export_qonnx

    export_qonnx(model, torch.randn(*in_shape), export_path=str(path), dynamo=False)
    return path


def brevitas_outputs(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    return np.asarray(getattr(y, "value", y), dtype=np.float64)


def make_attention_core(window, d_model, heads, bits, po2=False, seed=0):
    """Attention without softmax (scores quantised, then times V, heads merged, output projection):
    exercises products of two activations, head splitting, K^T and the merge as addressing."""
    import math

    import brevitas.nn as qnn
    import torch

    act, _, weight = quantisers(po2)
    torch.manual_seed(seed)
    d_head = d_model // heads

    class Core(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            lin = dict(bias=True, weight_quant=weight, weight_bit_width=bits, output_quant=act, output_bit_width=bits)
            self.q, self.k, self.v = (qnn.QuantLinear(d_model, d_model, **lin) for _ in range(3))
            self.score = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            self.context = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            self.out = qnn.QuantLinear(d_model, d_model, **lin)

        def forward(self, x):
            x = self.inp(x)
            q = self.q(x).reshape(-1, window, heads, d_head).permute(0, 2, 1, 3)
            k_t = self.k(x).reshape(-1, window, heads, d_head).permute(0, 2, 3, 1)
            v = self.v(x).reshape(-1, window, heads, d_head).permute(0, 2, 1, 3)
            s = self.score(torch.matmul(q, k_t) * (1 / math.sqrt(d_head)))
            c = self.context(torch.matmul(s, v)).permute(0, 2, 1, 3).reshape(-1, window, d_model)
            return self.out(c)

    return calibrated(Core(), (window, d_model))


def export_config(kind: str, params: dict, path: Path) -> tuple[Path, tuple]:
    """Export one benchmark/calibration configuration to QONNX: an MLP (sizes, bits, po2) or the forecasting
    Transformer (window, d_model, heads, bits, po2, plan); returns the file and the input shape."""
    import torch
    from brevitas.export import export_qonnx
    from model import build_model  # examples/forecasting, on sys.path in tests and benchmarks

    if kind == "mlp":
        sizes = params["sizes"]
        model = make_mlp(
            sizes, params["bits"], po2=params.get("po2", False), out_quant=True, seed=params.get("seed", 0)
        )
        return export(model, path, (1, sizes[0])), (sizes[0],)
    torch.manual_seed(params.get("seed", 0))
    w = params["window"]
    model = build_model(
        w, 3, params["d_model"], params["heads"], params["bits"], plan=params.get("plan"), po2=params.get("po2", True)
    )
    export_qonnx(calibrated(model, (w, 3)), torch.randn(1, w, 3), export_path=str(path), dynamo=False)
    return path, (w, 3)
