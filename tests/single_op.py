"""Designs of one or two hand-made integer ops, to test an op in GHDL without a Brevitas model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO, TensorIO
from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.ops.mac import IntLinear
from qonnx_spartan.simulation import simulate_build


def tensor_io(name: str, shape, dtype: IntType, scale: float = 1.0) -> TensorIO:
    return TensorIO(name, list(shape), scale, dtype, dtype.lo, dtype.hi)


def linear_layer(
    name: str,
    src: str,
    dst: str,
    shape,
    weights,
    in_type: IntType,
    out_type: IntType,
    bias=None,
    acc_shift: int = 0,
    rescale: Rescale | None = Rescale(1, 0),
    out_range: tuple[int, int] | None = None,
):
    """An IntLinear with the given integer weights; by default no bias and no rescaling (saturated to
    out_type).  rescale None outputs the accumulator itself (out_type and out_range must then hold it)."""
    weights = np.asarray(weights)
    out_lo, out_hi = out_range if out_range is not None else (out_type.lo, out_type.hi)
    bias = np.zeros(weights.shape[1]) if bias is None else bias
    return IntLinear.make_node(
        name, src, dst, in_type, weights, bias, acc_shift, rescale, out_type, out_lo, out_hi, shape
    )


def copy_layer(name: str, src: str, dst: str, shape, dtype: IntType):
    """A copy of the input (identity weights) in a second buffer, so that a two-input op can read two
    different tensors."""
    return linear_layer(name, src, dst, shape, np.eye(shape[-1]), dtype, dtype)


def reversed_layer(name: str, src: str, dst: str, shape, in_type: IntType, out_type: IntType):
    """Like copy_layer, but the channels come out reversed and saturated to another type, so a second
    operand differs from the first in value and type (a miswired port cannot go unnoticed)."""
    return linear_layer(name, src, dst, shape, np.eye(shape[-1])[::-1], in_type, out_type)


def lowered_model(nodes, inp: TensorIO, out: TensorIO, dtypes: dict[str, IntType]) -> ModelWrapper:
    """A lowered graph as LowerToIntegerOps would make it: integer ops, datatypes and host I/O metadata."""
    graph = helper.make_graph(
        nodes,
        "single_op",
        [helper.make_tensor_value_info(inp.name, TensorProto.FLOAT, inp.shape)],
        [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, out.shape)],
    )
    model = ModelWrapper(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    )
    for tensor, dtype in {inp.name: inp.dtype, **dtypes}.items():
        model.set_tensor_datatype(tensor, DataType[dtype.name])
    for node in nodes:
        if node.output[0] != out.name:
            model.set_tensor_shape(node.output[0], list(getCustomOp(node).get_nodeattr("out_shape")))
    HostIO(inp, (out,)).save(model)
    return model


def build_and_simulate(model: ModelWrapper, tmp: Path, vectors: np.ndarray, memory_style: str = "auto"):
    """Build the hand-made lowered model and run integer `vectors` (batch first, input shape per item).

    The host quantisation has scale 1, so the float inputs are the integers themselves."""
    path = tmp / "lowered.onnx"
    model.save(str(path))
    out = tmp / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style=memory_style))
    return simulate_build(out, np.asarray(vectors, dtype=np.float32))
