"""Loading ONNX files, with one clear line for every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.errors import SpartanError


def load_model(path: str | Path) -> ModelWrapper:
    path = Path(path)
    if not path.is_file():
        raise SpartanError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError) as e:
        raise SpartanError(f"{path}: not a readable ONNX model ({e.__class__.__name__})") from None
    if not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise SpartanError(f"{path}: not a readable ONNX model (no graph, inputs or outputs)")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid"
        raise SpartanError(f"{path}: invalid ONNX model: {first}") from None
    return ModelWrapper(proto)
