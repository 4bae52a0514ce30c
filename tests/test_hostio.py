"""The host side: the input's normalisation (x * gain + offset, from `(x - mean) / std` in forward) is
applied before quantising, and kept in the model's metadata."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.hostio import HostIO, TensorIO
from qonnx_spartan.intarith import IntType


def test_the_input_affine_is_applied_before_quantising_and_kept():
    affine = ((0.5, 2.0, 1.0, 4.0), (0.0, -1.0, 0.25, 0.0))
    io = HostIO(
        TensorIO("x", [1, 2, 2], 0.25, IntType(True, 8), -128, 127, affine),
        (TensorIO("y", [1, 1], 0.5, IntType(True, 8), -128, 127),),
    )
    x = np.array([[[1.0, 1.0], [2.0, 1.0]]])
    # (1*0.5, 1*2-1, 2*1+0.25, 1*4) / 0.25 = (2, 4, 9, 16)
    assert io.batch(x, "x").tolist() == [[2, 4, 9, 16]]
    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [])
    model = ModelWrapper(helper.make_model(graph))
    io.save(model)
    assert HostIO.load(model) == io
    plain = TensorIO("x", [1, 2, 2], 0.25, IntType(True, 8), -128, 127)
    assert plain.quantize(x).tolist() == [[[4, 4], [8, 4]]]
