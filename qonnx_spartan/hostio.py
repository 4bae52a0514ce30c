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
    """One end of the design: integer = clamp(round_half_even(value / scale), lo, hi), stored as dtype.  The
    input may first be normalised as the model's forward does before its quantiser, value = x * gain +
    offset per element of an item (`affine`: the two lists, flat; None: value = x)."""

    name: str
    shape: list[int]
    scale: float
    dtype: IntType
    lo: int
    hi: int
    affine: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.affine is not None:
            gain, offset = (np.asarray(v, dtype=np.float64) for v in self.affine)
            x = (x.reshape(len(x), -1) * gain + offset).reshape(x.shape)
        return np.clip(np.round(x / self.scale), self.lo, self.hi).astype(np.int64)

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
            **({"affine": [list(self.affine[0]), list(self.affine[1])]} if self.affine is not None else {}),
        }

    @classmethod
    def from_json(cls, d: dict) -> "TensorIO":
        affine = tuple(tuple(map(float, v)) for v in d["affine"]) if "affine" in d else None
        return cls(
            d["name"], list(d["shape"]), float(d["scale"]), IntType.from_name(d["dtype"]), d["lo"], d["hi"], affine
        )


@dataclass(frozen=True)
class HostIO:
    """The design's input and its outputs, in the order the model returns them.  The hardware streams the
    outputs one after another, so a result line (reference or simulator) is their elements concatenated."""

    input: TensorIO
    outputs: tuple[TensorIO, ...]

    @property
    def output(self) -> TensorIO:
        """The one output, for the callers that compare a single prediction (search, study, examples)."""
        if len(self.outputs) != 1:
            names = ", ".join(f"'{o.name}'" for o in self.outputs)
            raise SpartanError(f"the model has {len(self.outputs)} outputs ({names}); this step takes one")
        return self.outputs[0]

    @property
    def output_count(self) -> int:
        """Integers per result line: every output's elements."""
        return sum(o.count for o in self.outputs)

    def split(self, rows: np.ndarray) -> list[np.ndarray]:
        """Result lines (vectors, output_count) as one array per output, (vectors, *its shape per item)."""
        ends = np.cumsum([o.count for o in self.outputs])[:-1]
        return [
            part.reshape(len(rows), *o.shape[1:]) for o, part in zip(self.outputs, np.split(rows, ends, axis=1))
        ]

    def dequantize(self, rows: np.ndarray) -> list[np.ndarray]:
        """Result lines as each output's real values, one array per output."""
        return [o.dequantize(part) for o, part in zip(self.outputs, self.split(rows))]

    def save(self, model: ModelWrapper) -> None:
        model.set_metadata_prop(
            METADATA_KEY,
            json.dumps({"input": self.input.to_json(), "outputs": [o.to_json() for o in self.outputs]}),
        )

    @classmethod
    def load(cls, model: ModelWrapper) -> "HostIO":
        raw = model.get_metadata_prop(METADATA_KEY)
        if raw is None:
            raise SpartanError("the model is not a lowered qonnx-spartan graph (no host I/O metadata)")
        d = json.loads(raw)
        outputs = d["outputs"] if "outputs" in d else [d["output"]]  # builds from before several outputs
        return cls(TensorIO.from_json(d["input"]), tuple(TensorIO.from_json(o) for o in outputs))

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
