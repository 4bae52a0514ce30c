"""PoolToMean: averages over time in every exported form as ReduceMean, the same values."""

from __future__ import annotations

import numpy as np
import pytest
from canonical_graphs import canonical_equivalent, graph_model, op_types
from onnx import helper

from qonnx_spartan.transforms import Canonicalise


@pytest.mark.parametrize("opset", [13, 18])
def test_global_average_pool_through_transpose_and_squeeze(opset):
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("GlobalAveragePool", ["t"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Squeeze", ["p", "axes"], ["y"], name="/Squeeze"),
    ]
    model = graph_model(nodes, (1, 6, 4), (1, 4), {"axes": np.array([2])}, opset=opset)
    model = canonical_equivalent(model, (1, 6, 4))
    assert op_types(model) == ["Transpose", "ReduceMean", "Reshape"]


def test_whole_window_average_pool_and_sum():
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], name="/pool", kernel_shape=[6]),
        helper.make_node("ReduceSum", ["p", "axes"], ["y"], name="/sum", keepdims=0),
    ]
    model = graph_model(nodes, (1, 4, 6), (1, 4), {"axes": np.array([2])})
    model = canonical_equivalent(model, (1, 4, 6))
    assert op_types(model) == ["ReduceMean", "ReduceMean", "Mul"]


def test_a_strided_pool_is_not_a_mean():
    node = helper.make_node("AveragePool", ["x"], ["y"], name="/pool", kernel_shape=[2], strides=[2])
    model = graph_model([node], (1, 4, 6), (1, 4, 3), {})
    assert op_types(model.transform(Canonicalise())) == ["AveragePool"]
