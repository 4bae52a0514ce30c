"""BatchNormThroughViews: BatchNorm1d through permute as BatchNorm over (rows, features), same values."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types
from onnx import helper


def batchnorm_parameters(seed: int, channels: int = 4) -> dict[str, np.ndarray]:
    """Random gamma, beta, mean and a positive variance."""
    rng = np.random.default_rng(seed)
    g, b, m = (rng.normal(size=channels).astype(np.float32) for _ in range(3))
    return {"g": g, "b": b, "m": m, "v": np.abs(rng.normal(size=channels)).astype(np.float32) + 0.1}


def test_batchnorm_through_permute_normalises_rows_of_features():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("BatchNormalization", ["t", "g", "b", "m", "v"], ["n"], name="/norm/BatchNormalization"),
        helper.make_node("Transpose", ["n"], ["y"], name="/Transpose_1", perm=[0, 2, 1]),
    ]
    model = canonical_equivalent(graph_model(nodes, (1, 5, 4), (1, 5, 4), batchnorm_parameters(1)), (1, 5, 4))
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    assert bn.name == "/norm/BatchNormalization" and model.get_tensor_shape(bn.input[0]) == [5, 4]
    assert op_types(model)[:3] == ["Reshape", "BatchNormalization", "Reshape"]


def test_batchnorm_over_channels_first_goes_channels_last():
    """BatchNorm1d straight on a (batch, channels, time) tensor (a Conv1d's result): between a Transpose to
    channels last and one back it normalises rows of channels, with the same values."""
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="/bn/BatchNormalization")]
    model = canonical_equivalent(graph_model(nodes, (1, 4, 6), (1, 4, 6), batchnorm_parameters(2)), (1, 4, 6))
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    assert bn.name == "/bn/BatchNormalization" and model.get_tensor_shape(bn.input[0]) == [6, 4]
    assert op_types(model) == ["Transpose", "Reshape", "BatchNormalization", "Reshape", "Transpose"]


def test_batchnorm_over_rows_is_left_alone():
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="/bn/BatchNormalization")]
    init = {k: np.ones(4, dtype=np.float32) for k in "gbmv"}
    model = graph_model(nodes, (3, 4), (3, 4), init)
    from qonnx_spartan.transforms.batchnorm_views import BatchNormThroughViews

    assert BatchNormThroughViews().apply(model)[1] is False
