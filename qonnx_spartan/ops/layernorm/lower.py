"""Lowering pattern of the integer LayerNorm (registered in PATTERNS, walked by transforms/lower.py):

    LayerNormalization (last axis) Quant  -> IntLayerNorm

The pattern ends at the Quant after the normalisation.
"""

from __future__ import annotations

import numpy as np
from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.ops.layernorm.int_layernorm import IntLayerNorm
from qonnx_spartan.transforms.lower import IntTensor, Lowering, Pattern
from qonnx_spartan.transforms.quant import node_label


def lower_layernorm(lowering: Lowering, norm) -> None:
    x = lowering.contiguous(norm.input[0], norm)
    rank = len(lowering.shape(norm.input[0]))
    axis = get_by_name(norm.attribute, "axis")
    if axis is not None and axis.i not in (-1, rank - 1):
        raise SpartanError(
            f"{node_label(norm)}: LayerNorm over axis {axis.i} onwards; only the last axis is supported: "
            "normalise the features alone, nn.LayerNorm(d) of (batch, time, d)"
        )
    channels = lowering.shape(norm.input[0])[-1]
    params = [lowering.constant(t)[0] if t else None for t in (list(norm.input[1:3]) + [""])[:2]]
    gamma = params[0] if params[0] is not None else np.ones(channels)
    beta = params[1] if params[1] is not None else np.zeros(channels)
    if any(t and p is None for t, p in zip(norm.input[1:3], params)):
        raise SpartanError(f"{node_label(norm)}: LayerNorm's weight and bias must be constants")
    eps = get_by_name(norm.attribute, "epsilon")
    chain, out_quant = lowering.quant_after(norm)
    if out_quant is None:
        raise SpartanError(
            f"{node_label(norm)}: the LayerNorm output must be quantised; put a QuantIdentity after the LayerNorm"
        )
    shape = lowering.buffer_shape(chain[-1].output[0])
    out = IntTensor.quantised(chain[-1].output[0], out_quant, shape)
    node = IntLayerNorm.make_node(
        norm.name,
        x.name,
        out.name,
        x.dtype,
        x.scale,
        np.asarray(gamma, dtype=np.float64).reshape(-1),
        np.asarray(beta, dtype=np.float64).reshape(-1),
        eps.f if eps is not None else 1e-5,
        out.dtype,
        out.scale,
        out.lo,
        out.hi,
        list(shape),
    )
    lowering.finish([norm, *chain], out, node)


PATTERNS = (Pattern("LayerNormalization", lower_layernorm),)
