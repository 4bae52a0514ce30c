"""The host side of a design: quantising float inputs and dequantising integer outputs.

The lowered graph is integer-only; the scales that connect it to the float world are kept in the model's
metadata (key `qonnx_spartan.io`) so that a built design can be driven from float data later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType

METADATA_KEY = "qonnx_spartan.io"


@dataclass(frozen=True)
class TensorIO:
    """One end of the design: integer = clamp(round_half_even(value / scale), lo, hi), stored as dtype."""

    name: str
    shape: list[int]
    scale: float
    dtype: IntType
    lo: int
    hi: int

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.asarray(x, dtype=np.float64) / self.scale), self.lo, self.hi).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) * self.scale).astype(np.float32)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "scale": self.scale,
            "dtype": self.dtype.name,
            "lo": self.lo,
            "hi": self.hi,
        }

    @classmethod
    def from_json(cls, d: dict) -> "TensorIO":
        return cls(d["name"], list(d["shape"]), float(d["scale"]), IntType.from_name(d["dtype"]), d["lo"], d["hi"])


@dataclass(frozen=True)
class HostIO:
    input: TensorIO
    output: TensorIO

    def save(self, model: ModelWrapper) -> None:
        model.set_metadata_prop(
            METADATA_KEY, json.dumps({"input": self.input.to_json(), "output": self.output.to_json()})
        )

    @classmethod
    def load(cls, model: ModelWrapper) -> "HostIO":
        raw = model.get_metadata_prop(METADATA_KEY)
        if raw is None:
            raise SpartanError("the model is not a lowered qonnx-spartan graph (no host I/O metadata)")
        d = json.loads(raw)
        return cls(TensorIO.from_json(d["input"]), TensorIO.from_json(d["output"]))

    def batch(self, x: np.ndarray, source: str) -> np.ndarray:
        """Float inputs (batch first) as integer vectors, one row per inference; shape errors name `source`."""
        x = np.asarray(x)
        per_item = list(self.input.shape[1:])
        if x.ndim == len(self.input.shape) - 1 and list(x.shape) == per_item:
            x = x[None]
        if list(x.shape[1:]) != per_item or x.shape[0] == 0:
            raise SpartanError(
                f"{source}: inputs of shape {list(x.shape)} do not match the model input {['N', *per_item]}"
            )
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise SpartanError(f"{source}: inputs must be finite numbers")
        return self.input.quantize(x).reshape(x.shape[0], -1)
