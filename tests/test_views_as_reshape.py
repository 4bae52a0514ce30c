"""ViewsAsReshape: Squeeze, Unsqueeze, Flatten, Identity and in-order Gathers as Reshape, same values."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types
from onnx import helper

from qonnx_spartan.transforms.views_as_reshape import ViewsAsReshape


def test_relabelling_views_become_reshapes():
    nodes = [
        helper.make_node("Unsqueeze", ["x", "a0"], ["u"], name="/Unsqueeze"),
        helper.make_node("Identity", ["u"], ["i"], name="/Identity"),
        helper.make_node("Flatten", ["i"], ["f"], name="/Flatten", axis=1),
        helper.make_node("Gather", ["f", "idx"], ["y"], name="/as_strided", axis=1),
    ]
    init = {"a0": np.array([0]), "idx": np.arange(12).reshape(3, 4)}
    model = canonical_equivalent(graph_model(nodes, (3, 4), (1, 3, 4), init), (3, 4))
    assert op_types(model) == ["Reshape", "Reshape", "Reshape"]


def test_a_gather_that_reorders_is_not_a_view():
    node = helper.make_node("Gather", ["x", "idx"], ["y"], name="/Gather", axis=1)
    model = graph_model([node], (2, 4), (2, 4), {"idx": np.array([3, 2, 1, 0])})
    assert ViewsAsReshape().apply(model)[1] is False
