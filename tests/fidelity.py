"""How close the integer graph is to the exported QONNX/Brevitas model, in LSBs of each quantised tensor."""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.hostio import HostIO


def requantised_tensor_lsb_errors(tidied: ModelWrapper, lowered: ModelWrapper, x: np.ndarray) -> dict[str, float]:
    """Worst |integer - float/scale| per requantised tensor, over the float inputs x (batch first).

    The float side is qonnx's execution of the exported graph (what Brevitas computes); the integer side
    the lowered graph; tensors are matched by name, which the lowering keeps."""
    io = HostIO.load(lowered)
    requantised = [
        n.output[0]
        for n in lowered.graph.node
        if "requant" not in getCustomOp(n).get_nodeattr_types() or getCustomOp(n).get_nodeattr("requant")
    ]
    worst = {name: 0.0 for name in requantised}
    in_name = tidied.graph.input[0].name
    for row in np.asarray(x, dtype=np.float32):
        fctx = execute_onnx(tidied, {in_name: row.reshape(io.input.shape)}, return_full_exec_context=True)
        ints = io.input.quantize(row).reshape(io.input.shape).astype(np.float32)
        ictx = execute_onnx(lowered, {io.input.name: ints}, return_full_exec_context=True)
        for name in worst:
            scale = scale_of(tidied, name)
            err = np.round(np.abs(ictx[name] - fctx[name] / scale), 4).max()  # float32 noise is not an LSB
            worst[name] = max(worst[name], float(err))
    return worst


def scale_of(tidied: ModelWrapper, tensor: str) -> float:
    """Scale of the Quant behind a tensor, looking through the Reshape/Transpose views after it."""
    node = tidied.find_producer(tensor)
    while node.op_type in ("Reshape", "Transpose"):
        node = tidied.find_producer(node.input[0])
    return float(np.asarray(tidied.get_initializer(node.input[1])).ravel()[0])
