"""Reading QONNX Quant nodes: their parameters, and integer weights from a constant Quant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import max_int, min_int
from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType

SUPPORTED_ROUNDING = ("ROUND", "HALF_EVEN")


@dataclass(frozen=True)
class QuantSpec:
    """A per-tensor Quant: value = integer * scale, integer in [lo, hi], stored as `dtype`."""

    scale: float
    bits: int
    signed: bool
    narrow: bool

    @property
    def lo(self) -> int:
        return int(min_int(self.signed, self.narrow, self.bits))

    @property
    def hi(self) -> int:
        return int(max_int(self.signed, self.narrow, self.bits))

    @property
    def dtype(self) -> IntType:
        return IntType(self.signed, self.bits)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float to integer exactly as the Quant node does it (round half to even, clamp)."""
        return np.clip(np.round(np.asarray(x, dtype=np.float64) / self.scale), self.lo, self.hi).astype(np.int64)


def node_label(node) -> str:
    return f"node '{node.name}' ({node.op_type})"


def quant_spec(model: ModelWrapper, node) -> QuantSpec:
    """Parameters of a Quant node whose scale, zero point and bit width are constants."""
    if len(node.input) != 4:
        raise SpartanError(f"{node_label(node)}: {len(node.input)} inputs; a Quant has x, scale, zero point, bit width")
    scale, zero_point, bits = (model.get_initializer(t) for t in node.input[1:4])
    if scale is None or zero_point is None or bits is None:
        raise SpartanError(f"{node_label(node)}: scale, zero point and bit width must be constants")
    if np.asarray(scale).size != 1:
        raise SpartanError(
            f"{node_label(node)}: per-channel scales ({np.asarray(scale).size} of them) are not supported; "
            "use a per-tensor quantiser"
        )
    if np.asarray(bits).size != 1:
        raise SpartanError(f"{node_label(node)}: the bit width must be one number, not {np.asarray(bits).size}")
    nonzero = np.asarray(zero_point)[np.asarray(zero_point) != 0]
    if nonzero.size:
        raise SpartanError(f"{node_label(node)}: zero point {nonzero.ravel()[0]} is not supported (only 0)")
    rounding = get_by_name(node.attribute, "rounding_mode")
    mode = rounding.s.decode(errors="replace").upper() if rounding is not None else "ROUND"
    if mode not in SUPPORTED_ROUNDING:
        raise SpartanError(f"{node_label(node)}: rounding mode {mode} is not supported (only ROUND)")
    bits_v = float(np.asarray(bits).ravel()[0])
    if not np.isfinite(bits_v) or bits_v != int(bits_v) or not 2 <= bits_v <= 16:
        raise SpartanError(f"{node_label(node)}: bit width {bits_v:g} is not supported (2 to 16)")
    scale_v = float(np.asarray(scale).ravel()[0])
    if not scale_v > 0 or not np.isfinite(scale_v):
        raise SpartanError(f"{node_label(node)}: scale {scale_v} must be positive")
    signed = get_by_name(node.attribute, "signed")
    narrow = get_by_name(node.attribute, "narrow")
    return QuantSpec(
        scale_v,
        int(bits_v),
        bool(signed.i) if signed is not None else True,
        bool(narrow.i) if narrow is not None else False,
    )


@dataclass(frozen=True)
class IntWeights:
    """Integer weights with their scale, and where their float values live in the exported graph."""

    values: np.ndarray
    spec: QuantSpec
    float_tensor: str


def constant_weights(model: ModelWrapper, tensor: str, user) -> IntWeights:
    """Integer weights behind `tensor`: a Quant of a float initializer, possibly transposed."""
    producer = model.find_producer(tensor)
    if producer is None:
        if model.get_initializer(tensor) is not None:
            raise SpartanError(
                f"{node_label(user)}: weights '{tensor}' are not quantised (no Quant node); use a QuantLinear, and "
                "if it is one, export with brevitas.export.export_qonnx(..., dynamo=False), which keeps its quantisers"
            )
        raise SpartanError(f"{node_label(user)}: input '{tensor}' is neither quantised activations nor weights")
    if producer.op_type == "Transpose":
        inner = constant_weights(model, producer.input[0], user)
        perm = get_by_name(producer.attribute, "perm")
        axes = list(perm.ints) if perm is not None else None
        return IntWeights(np.transpose(inner.values, axes), inner.spec, inner.float_tensor)
    if producer.op_type == "Quant":
        floats = model.get_initializer(producer.input[0])
        if floats is None:
            raise SpartanError(f"{node_label(user)}: weights behind {node_label(producer)} are not constant")
        spec = quant_spec(model, producer)
        if not np.all(np.isfinite(floats)):
            raise SpartanError(f"{node_label(user)}: weights '{producer.input[0]}' have NaN or infinite values")
        return IntWeights(spec.quantize(floats), spec, producer.input[0])
    raise SpartanError(f"{node_label(user)}: weights come from {node_label(producer)}, expected a Quant node")
