"""SplitPackedLinear and MergeQuants on QuantMultiheadAttention's shapes: one packed in-projection read in
three slices, its input quantised once per projection with one quantiser, a 32-bit bias."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types, quant
from onnx import helper


def test_packed_projection_becomes_one_linear_per_slice_with_the_same_values():
    rng = np.random.default_rng(2)
    d = 4
    in_q, in_p = quant("/mha/in_proj/input_quant/export_handler/Quant", "x", "xq", 0.05)
    in_q2, in_p2 = quant("/mha/in_proj/input_quant/export_handler_1/Quant", "x", "xq2", 0.05)
    w_q, w_p = quant("/mha/in_proj/weight_quant/export_handler/Quant", "w", "wq", 0.02)
    b_q, b_p = quant("/mha/in_proj/bias_quant/export_handler/Quant", "bias", "bq", 0.001, bits=32)
    nodes = [in_q, in_q2, w_q, b_q]
    nodes += [
        helper.make_node("Transpose", ["wq"], ["wt"], name="/mha/in_proj/Transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["xq", "wt"], ["p"], name="/mha/in_proj/MatMul"),
        helper.make_node("Add", ["bq", "p"], ["pb"], name="/mha/in_proj/Add"),
    ]
    for k in range(3):
        nodes.append(
            helper.make_node("Slice", ["pb", f"s{k}", f"e{k}", "ax"], [f"q{k}"], name=f"/mha/Slice_{k}")
        )
    nodes += [
        helper.make_node("Add", ["q0", "q1"], ["a"], name="/sum"),
        helper.make_node("Add", ["a", "q2"], ["m"], name="/sum_1"),
        helper.make_node("Mul", ["m", "xq2"], ["y"], name="/use_second_input_quant"),
    ]
    init = {
        "w": rng.normal(size=(3 * d, d)).astype(np.float32),
        "bias": rng.normal(size=3 * d).astype(np.float32),
        "ax": np.array([2]),
        **{f"s{k}": np.array([k * d]) for k in range(3)},
        **{f"e{k}": np.array([(k + 1) * d]) for k in range(3)},
        **in_p, **in_p2, **w_p, **b_p,
    }
    model = canonical_equivalent(graph_model(nodes, (1, 3, d), (1, 3, d), init), (1, 3, d))
    types = op_types(model)
    assert types.count("MatMul") == 3 and "Slice" not in types
    assert types.count("Quant") == 1 + 3  # the input quantised once, one weight Quant per slice, no bias Quant
    names = [n.name for n in model.graph.node if n.op_type == "MatMul"]
    assert all(name.startswith("/mha/in_proj/MatMul") for name in names)  # the module still names them
