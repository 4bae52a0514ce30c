"""Small Brevitas models exported to QONNX, for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_mlp(sizes, bits, po2=False, bias=True, out_quant=False, seed=0):
    """QuantIdentity -> (QuantLinear -> QuantReLU)* -> QuantLinear [-> output quantiser], calibrated."""
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8ActPerTensorFloat,
        Int8WeightPerTensorFixedPoint,
        Int8WeightPerTensorFloat,
        Uint8ActPerTensorFixedPoint,
        Uint8ActPerTensorFloat,
    )

    torch.manual_seed(seed)
    act, uact, weight = (
        (Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint)
        if po2
        else (Int8ActPerTensorFloat, Uint8ActPerTensorFloat, Int8WeightPerTensorFloat)
    )
    layers = [qnn.QuantIdentity(act_quant=act, bit_width=bits, return_quant_tensor=True)]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        kwargs = {"output_quant": act, "output_bit_width": bits} if (last and out_quant) else {}
        layers.append(qnn.QuantLinear(n_in, n_out, bias=bias, weight_quant=weight, weight_bit_width=bits,
                                      return_quant_tensor=not last, **kwargs))
        if not last:
            layers.append(qnn.QuantReLU(act_quant=uact, bit_width=bits, return_quant_tensor=True))
    model = torch.nn.Sequential(*layers)
    model.train()
    with torch.no_grad():  # calibrate the activation scales
        for _ in range(8):
            model(torch.randn(64, sizes[0]) * 1.5)
    model.eval()
    return model


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
