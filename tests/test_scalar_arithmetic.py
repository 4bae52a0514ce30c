"""ScalarArithmetic: Div and Sub by constants as Mul and Add, same values; by an activation left alone."""

from __future__ import annotations

import math

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types
from onnx import helper

from qonnx_spartan.transforms.scalar_arithmetic import ScalarArithmetic


def test_div_and_sub_by_constants():
    nodes = [
        helper.make_node("Div", ["x", "d"], ["q"], name="/Div"),
        helper.make_node("Sub", ["q", "c"], ["y"], name="/Sub"),
    ]
    init = {"d": np.float32(math.sqrt(8)), "c": np.full(3, 0.25, np.float32)}
    model = canonical_equivalent(graph_model(nodes, (1, 2, 3), (1, 2, 3), init), (1, 2, 3))
    assert op_types(model) == ["Mul", "Add"] and [n.name for n in model.graph.node] == ["/Div", "/Sub"]


def test_division_by_an_activation_is_left_alone():
    node = helper.make_node("Div", ["x", "x"], ["y"], name="/Div")
    assert ScalarArithmetic().apply(graph_model([node], (1, 3), (1, 3), {}))[1] is False
