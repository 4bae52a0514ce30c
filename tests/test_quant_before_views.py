"""QuantBeforeViews: a per-tensor Quant after views and scalar maps moves before the views."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types, quant
from onnx import helper

from qonnx_spartan.transforms import Canonicalise


def test_quant_after_transpose_reshape_and_scale_moves_before_the_views():
    q, params = quant("/ctx_q/act_quant/export_handler/Quant", "s", "y", 0.05)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["p"], name="/MatMul"),
        helper.make_node("Transpose", ["p"], ["t"], name="/Transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["t", "shape"], ["r"], name="/Reshape"),
        helper.make_node("Mul", ["r", "c"], ["s"], name="/Mul"),
        q,
    ]
    init = {"w": np.ones((3, 3), np.float32) * 0.3, "shape": np.array([1, 4, 6]), "c": np.float32(0.5), **params}
    model = graph_model(nodes, (1, 2, 4, 3), (1, 4, 6), init)
    model = canonical_equivalent(model, (1, 2, 4, 3))
    assert op_types(model) == ["MatMul", "Mul", "Quant", "Transpose", "Reshape"]
    assert model.graph.node[2].name == "/ctx_q/act_quant/export_handler/Quant"  # plans still find it


def test_batchnorm_then_reshape_is_left_for_the_lowering():
    q, params = quant("/q", "r", "y", 0.05)
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"], name="/bn"),
        helper.make_node("Reshape", ["n", "shape"], ["r"], name="/Reshape"),
        q,
    ]
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    init = {"g": ones, "b": zeros, "m": zeros, "v": ones, "shape": np.array([1, 3, 4]), **params}
    model = graph_model(nodes, (3, 4), (1, 3, 4), init)
    assert model.transform(Canonicalise()).model == model.model


def test_the_graph_input_read_through_views_is_quantised_first():
    """A first layer with its own input_quant on `x.transpose(1, 2)`: input -> Transpose -> Quant becomes
    input -> Quant -> Transpose, so the host quantises the input and the transpose is addressing."""
    q, params = quant("/conv/input_quant/export_handler/Quant", "t", "y", 0.05)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="/Transpose", perm=[0, 2, 1]), q]
    model = canonical_equivalent(graph_model(nodes, (1, 6, 3), (1, 3, 6), params), (1, 6, 3))
    assert op_types(model) == ["Quant", "Transpose"]
    assert model.graph.node[0].input[0] == model.graph.input[0].name


def test_a_float_map_of_the_graph_input_stays_for_the_lowering_to_refuse():
    """A ReLU of the raw input before its quantiser would be a float op on the host: left as it is."""
    q, params = quant("/q", "r", "y", 0.05)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("Relu", ["t"], ["r"], name="/Relu"),
        q,
    ]
    model = graph_model(nodes, (1, 6, 3), (1, 3, 6), params)
    assert model.transform(Canonicalise()).model == model.model
