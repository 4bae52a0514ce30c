"""WeightsOnTheRight and Gemm's transA: weights on the left of a product (`W @ x`) and a transposed
activation operand become `x^T @ W^T` with views the hardware reads as strides; the same values, and
the built design GHDL bit-exact with a reference that equals the exported graph's quantised outputs."""

from __future__ import annotations

import numpy as np
from canonical_graphs import canonical_equivalent, graph_model, op_types, outputs, quant
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms.weights_on_the_right import WeightsOnTheRight

T, F, N = 6, 4, 3


def w_at_x(bias: bool = False):
    """x (1, T, F) -> Quant -> W (N, T) @ x -> (1, N, F) -> Quant: a mixing over time, weights on the left."""
    x_q, x_p = quant("/inp/Quant", "x", "xq", 2**-4)
    w_q, w_p = quant("/mix/weight_quant/Quant", "w", "wq", 2**-5)
    y_q, y_p = quant("/mix/output_quant/Quant", "p", "y", 2**-3)
    nodes = [x_q, w_q, helper.make_node("MatMul", ["wq", "xq"], ["p"], name="/mix/MatMul"), y_q]
    init = {"w": np.random.default_rng(1).normal(size=(N, T)).astype(np.float32), **x_p, **w_p, **y_p}
    return graph_model(nodes, (1, T, F), (1, N, F), init)


def gemm_trans_a():
    """x (1, T, F) -> Quant -> (T, F) -> Gemm(transA=1) with W (T, N) and a bias -> (F, N) -> Quant."""
    x_q, x_p = quant("/inp/Quant", "x", "xq", 2**-4)
    w_q, w_p = quant("/fc/weight_quant/Quant", "w", "wq", 2**-5)
    y_q, y_p = quant("/fc/output_quant/Quant", "p", "y", 2**-3)
    nodes = [
        x_q,
        w_q,
        helper.make_node("Reshape", ["xq", "rows"], ["xr"], name="/fc/Reshape"),
        helper.make_node("Gemm", ["xr", "wq", "b"], ["p"], name="/fc/Gemm", transA=1),
        y_q,
    ]
    rng = np.random.default_rng(2)
    init = {
        "w": rng.normal(size=(T, N)).astype(np.float32),
        "b": rng.normal(size=N).astype(np.float32) * 0.1,
        "rows": np.array([T, F]),
        **x_p,
        **w_p,
        **y_p,
    }
    return graph_model(nodes, (1, T, F), (F, N), init)


def test_weights_on_the_left_move_to_the_right_with_the_same_values():
    model = canonical_equivalent(w_at_x(), (1, T, F))
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert matmul.name == "/mix/MatMul" and matmul.input[0] != "wq"  # the activations on the left now
    assert op_types(model).count("Transpose") == 3  # the weights', the input's and the output's


def test_a_product_of_activations_is_left_alone():
    node = helper.make_node("MatMul", ["x", "x"], ["y"], name="/MatMul")
    assert WeightsOnTheRight().apply(graph_model([node], (1, 4, 4), (1, 4, 4), {}))[1] is False


def build_and_check(tmp_path, model, vectors: int = 8):
    """Build through the flow, GHDL against the reference, and the reference against the float graph (with
    power-of-two scales the integer graph gives the exported graph's integers exactly)."""
    path = tmp_path / "m.onnx"
    model.save(str(path))
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "b"))
    x = np.random.default_rng(3).normal(size=(vectors, T, F)).astype(np.float32)
    report = simulate_build(tmp_path / "b", x)
    assert report.bit_exact
    io = HostIO.load(lowered)
    expected = np.stack([outputs(model, row[None]).reshape(-1) for row in x]) / io.output.scale
    np.testing.assert_allclose(report.reference, np.round(expected), atol=1e-6)  # the same integers
    return lowered


def test_w_at_x_builds_bit_exact_reading_x_through_strides(tmp_path, ghdl):
    lowered = build_and_check(tmp_path, w_at_x())
    linear = getCustomOp(next(n for n in lowered.graph.node if n.op_type == "IntLinear"))
    assert linear.a_strides() == (0, 1, 0, F)  # x^T: rows over the features, time summed with stride F
    assert linear.y_strides() == (0, 1, F)  # (x^T W^T)^T written in the layout the output reads


def test_gemm_with_trans_a_builds_bit_exact(tmp_path, ghdl):
    lowered = build_and_check(tmp_path, gemm_trans_a())
    linear = getCustomOp(next(n for n in lowered.graph.node if n.op_type == "IntLinear"))
    assert linear.a_strides() == (0, 1, 0, F)
