"""Lowering patterns of the elementwise engine's ops (registered in PATTERNS, walked by transforms/lower.py):

    Add(a, b) Quant, Add(a, Quant(const)) Quant, Add(a, const) Quant  -> IntAdd
    Quant of quantised activations (a second quantiser)               -> IntAffine (gain 1), or nothing
    BatchNormalization [Reshape] [Relu] Quant                         -> IntAffine

Each pattern ends at the activation Quant after it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType
from qonnx_spartan.ops.elementwise.int_add import IntAdd
from qonnx_spartan.ops.elementwise.int_affine import IntAffine
from qonnx_spartan.transforms.lower import IntTensor, Lowering, Pattern, float_constant
from qonnx_spartan.transforms.quant import node_label, quant_spec
from qonnx_spartan.transforms.views import is_identity


def lower_add(lowering: Lowering, add) -> None:
    a_name, b_name = add.input
    chain, out_quant = lowering.quant_after(add)
    if out_quant is None:
        raise SpartanError(f"{node_label(add)}: the sum must be quantised")
    shape = lowering.buffer_shape(chain[-1].output[0])
    if lowering.is_activation(a_name) and lowering.is_activation(b_name):
        a, b = lowering.contiguous(a_name, add), lowering.contiguous(b_name, add)
        if a.name == b.name:
            raise SpartanError(f"{node_label(add)}: adding a tensor to itself is not supported")
        a_shape, b_shape = lowering.shape(a_name), lowering.shape(b_name)  # as read: a buffer may be reshaped
        if a_shape != b_shape:
            raise SpartanError(f"{node_label(add)}: broadcasting {list(a_shape)} + {list(b_shape)} is not supported")
        inputs, b_type, b_scale, const = [a.name, b.name], b.dtype, b.scale, None
    else:
        act, other = (a_name, b_name) if lowering.is_activation(a_name) else (b_name, a_name)
        a = lowering.contiguous(act, add)
        values, spec = lowering.constant(other)
        if values is None:
            raise SpartanError(f"{node_label(add)}: the constant added must be quantised (a Quant of a constant)")
        if spec is None:  # a float constant (a positional buffer added as it is): held like a bias
            values, b_scale = float_constant(add, values, out_quant.scale)
        else:
            b_scale = spec.scale
        while values.ndim > len(shape) - 1 and values.shape[0] == 1:
            values = values[0]  # a (1, T, D) buffer such as pe.unsqueeze(0)
        try:
            const = np.broadcast_to(values, shape[1:]).astype(np.int64)
        except ValueError:
            raise SpartanError(
                f"{node_label(add)}: a constant of shape {list(values.shape)} does not broadcast to the "
                f"activations' {list(shape[1:])}"
            ) from None
        inputs, b_type = [a.name], IntType.for_range(int(const.min()), int(const.max()))
    out = IntTensor.quantised(chain[-1].output[0], out_quant, shape)
    node = IntAdd.make_node(
        add.name,
        inputs,
        out.name,
        a.dtype,
        a.scale,
        b_type,
        b_scale,
        out.dtype,
        out.scale,
        out.lo,
        out.hi,
        list(shape),
        const=const,
    )
    lowering.finish([add, *chain], out, node)


def lower_requant(lowering: Lowering, quant) -> None:
    """A Quant of quantised activations (QuantMultiheadAttention's input quantisers, a QuantIdentity after
    a quantised layer): the same integers when it keeps the scale and the range fits, else a rescale.
    A Quant of a constant is the pattern's that reads the constant."""
    if lowering.model.get_initializer(quant.input[0]) is not None:
        return
    base, table = lowering.operand(quant.input[0], quant)
    spec = quant_spec(lowering.model, quant)
    if spec.scale == base.scale and spec.lo <= base.lo and base.hi <= spec.hi:
        lowering.views[quant.output[0]] = (base.name, table)
        lowering.consumed.add(quant.output[0])
        return
    if not is_identity(table) or table.size < np.prod(base.shape):
        raise SpartanError(
            f"{node_label(quant)}: re-quantising a transposed or indexed view of '{base.name}' is not supported; "
            "quantise before the view"
        )
    shape = lowering.buffer_shape(quant.output[0])
    out = IntTensor.quantised(quant.output[0], spec, shape)
    node = IntAffine.make_node(
        quant.name, base.name, out.name, base.dtype, base.scale, 1.0, 0.0, out.dtype, out.scale, out.lo, out.hi, shape
    )
    lowering.finish([quant], out, node)


def batchnorm_affine(model, bn) -> tuple[np.ndarray, np.ndarray]:
    """(gain, bias) of the per-channel map y = gain * x + bias a BatchNormalization in eval mode is."""
    params = [model.get_initializer(t) for t in bn.input[1:5]]
    if any(p is None for p in params):
        raise SpartanError(f"{node_label(bn)}: BatchNorm parameters must be constants (export in eval mode)")
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    eps = get_by_name(bn.attribute, "epsilon")
    var = var + (eps.f if eps is not None else 1e-5)
    if not all(np.all(np.isfinite(p)) for p in (gamma, beta, mean, var)) or np.any(var <= 0):
        raise SpartanError(f"{node_label(bn)}: BatchNorm parameters must be finite, with a positive variance")
    gain = gamma / np.sqrt(var)
    return gain, beta - gain * mean


def lower_batchnorm(lowering: Lowering, bn) -> None:
    x = lowering.contiguous(bn.input[0], bn)
    in_shape = lowering.shape(bn.input[0])
    if len(in_shape) != 2:
        raise SpartanError(
            f"{node_label(bn)}: BatchNorm over an input of shape {list(in_shape)}; "
            "normalise (rows, features) as BatchNorm1d over the last axis"
        )
    gain, bias = batchnorm_affine(lowering.model, bn)
    chain, out_quant = lowering.quant_after(bn, allowed=("Reshape", "Relu"))
    if out_quant is None:
        raise SpartanError(f"{node_label(bn)}: the BatchNorm output must be quantised")
    shape = lowering.buffer_shape(chain[-1].output[0])
    out = IntTensor.quantised(chain[-1].output[0], out_quant, shape)
    if any(n.op_type == "Relu" for n in chain):  # rounding is monotone and keeps 0: a ReLU is a clamp at 0
        out = replace(out, lo=max(out.lo, 0))
    node = IntAffine.make_node(
        bn.name,
        x.name,
        out.name,
        x.dtype,
        x.scale,
        gain,
        bias,
        out.dtype,
        out.scale,
        out.lo,
        out.hi,
        list(shape),
    )
    lowering.finish([bn, *chain], out, node)


PATTERNS = (
    Pattern("Add", lower_add, reads_accumulator=True),
    Pattern("Quant", lower_requant),
    Pattern("BatchNormalization", lower_batchnorm, reads_accumulator=True),
)
