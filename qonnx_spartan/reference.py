"""The integer reference: the lowered graph executed by qonnx over a batch of integer vectors."""

from __future__ import annotations

import copy

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qonnx_spartan.hostio import HostIO


def run_reference(model: ModelWrapper, vectors: np.ndarray) -> np.ndarray:
    """Outputs (vectors, output elements) for integer input vectors (vectors, input elements): every graph
    output's elements, concatenated in the order of the outputs as the hardware streams them
    (`HostIO.split` separates them).

    The integer ops accept any leading batch size, so one execution of a copy whose input is declared
    with the batch size covers all vectors."""
    io = HostIO.load(model)
    batched = copy.deepcopy(model)
    batched.set_tensor_shape(io.input.name, [len(vectors), *io.input.shape[1:]])
    x = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), *io.input.shape[1:])
    context = execute_onnx(batched, {io.input.name: x})
    outs = [np.rint(context[o.name]).astype(np.int64).reshape(len(vectors), -1) for o in io.outputs]
    return np.concatenate(outs, axis=1)
