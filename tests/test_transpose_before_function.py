"""TransposeBeforeFunction: a transpose after a function of a Conv1d's quantised result moves before it."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types, quant
from onnx import helper

from qonnx_spartan.transforms import Canonicalise


def conv_function_graph(first: str):
    """`first` (Conv or MatMul) -> Quant -> GELU as the TorchScript exporter writes it (x * 0.5 * (1 +
    erf(x / sqrt 2))) -> Quant -> Transpose(0, 2, 1)."""
    q0, p0 = quant("/conv/output_quant/export_handler/Quant", "c", "xq", 0.05)
    q1, p1 = quant("/gelu_quant/act_quant/export_handler/Quant", "g", "q", 0.05)
    if first == "Conv":
        make = helper.make_node("Conv", ["in", "w"], ["c"], name="/conv/Conv", pads=[1, 1], kernel_shape=[3])
        w = np.random.default_rng(0).normal(size=(4, 3, 3)).astype(np.float32) * 0.3
    else:
        make = helper.make_node("MatMul", ["in", "w"], ["c"], name="/fc/MatMul")
        w = np.random.default_rng(0).normal(size=(6, 6)).astype(np.float32) * 0.3
    nodes = [
        helper.make_node("Relu", ["x"], ["in"], name="/Relu"),  # the graph input is x
        make,
        q0,
        helper.make_node("Div", ["xq", "sqrt2"], ["d"], name="/gelu/Div"),
        helper.make_node("Erf", ["d"], ["e"], name="/gelu/Erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="/gelu/Add"),
        helper.make_node("Mul", ["xq", "a"], ["m"], name="/gelu/Mul"),
        helper.make_node("Mul", ["m", "half"], ["g"], name="/gelu/Mul_1"),
        q1,
        helper.make_node("Transpose", ["q"], ["y"], name="/Transpose", perm=[0, 2, 1]),
    ]
    init = {"w": w, "sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5), **p0, **p1}
    return nodes, init


def test_transpose_after_a_conv1d_activation_moves_before_the_function():
    nodes, init = conv_function_graph("Conv")
    model = graph_model(nodes, (1, 3, 6), (1, 6, 4), init)
    model = canonical_equivalent(model, (1, 3, 6))
    types = op_types(model)
    assert types.index("Transpose") == types.index("Quant") + 1  # Conv -> Quant -> Transpose -> the function
    assert types[-1] == "Quant" and model.graph.node[-1].output[0] == "y"  # its readers unchanged
    assert next(n for n in model.graph.node if n.op_type == "Transpose").name == "/Transpose"


def test_a_transpose_after_another_writer_stays():
    """After a linear layer (or a LayerNorm) the transpose stays: only a Conv1d's writer is known to take it."""
    nodes, init = conv_function_graph("MatMul")
    model = graph_model(nodes, (1, 4, 6), (1, 6, 4), init)
    assert op_types(model.transform(Canonicalise()))[-1] == "Transpose"
