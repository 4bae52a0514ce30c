"""Loading ONNX files, with one clear line for every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.transforms.cleanup import wrap


def load_model(path: str | Path) -> ModelWrapper:
    path = Path(path)
    if path.is_dir():
        raise SpartanError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise SpartanError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError) as e:
        raise SpartanError(f"{path}: not a readable ONNX model ({e.__class__.__name__})") from None
    bad = non_text_field(proto)
    if bad is not None:
        raise SpartanError(f"{path}: not a readable ONNX model (a {bad} is not UTF-8 text)")
    if not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise SpartanError(f"{path}: not a readable ONNX model (no graph, inputs or outputs)")
    for tensor in proto.graph.initializer:
        try:
            numpy_helper.to_array(tensor)
        except (ValueError, TypeError, KeyError) as e:
            raise SpartanError(f"{path}: initializer '{tensor.name}' does not hold its data ({e})") from None
    known = set(onnx.TensorProto.DataType.values()) - {onnx.TensorProto.UNDEFINED}
    for info in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):  # the checker lets these by
        if info.type.tensor_type.elem_type not in known:
            raise SpartanError(f"{path}: tensor '{info.name}' has an unknown type {info.type.tensor_type.elem_type}")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        text = " ".join(str(e).split()) or "invalid"  # the checker names the node on further lines
        raise SpartanError(f"{path}: invalid ONNX model: {text[:300]}") from None
    return wrap(proto)


def non_text_field(message) -> str | None:
    """The name of a string field, at any depth, holding bytes that are not UTF-8: protobuf parses them and
    hands them back as bytes, which fail later, deep in a transformation (a damaged node name)."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for item in values:
                bad = non_text_field(item)
                if bad is not None:
                    return bad
        elif field.type == field.TYPE_STRING and not all(isinstance(item, str) for item in values):
            return f"{message.DESCRIPTOR.name}.{field.name}"
    return None
