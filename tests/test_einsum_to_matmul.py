"""EinsumToMatMul: two-operand contractions as views around a batched MatMul, numerically the Einsum."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qonnx_spartan.transforms.cleanup import infer_shapes
from qonnx_spartan.transforms.einsum_to_matmul import EinsumToMatMul, parse


def einsum_model(equation: str, shape_a, shape_b) -> ModelWrapper:
    out_shape = list(np.einsum(equation, np.zeros(shape_a), np.zeros(shape_b)).shape)
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["a", "b"], ["y"], name="/attn/Einsum", equation=equation)],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, list(shape_a)),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, list(shape_b)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
    )
    return infer_shapes(ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])))


@pytest.mark.parametrize(
    "equation,shape_a,shape_b",
    [
        ("blhe,bshe->bhls", (1, 5, 2, 3), (1, 4, 2, 3)),  # scores (TinyTransformer4TS)
        ("bhls,bshd->blhd", (1, 2, 5, 4), (1, 4, 2, 3)),  # context
        ("ij,jk->ik", (3, 4), (4, 2)),
        ("bij,bkj->bik", (2, 3, 4), (2, 5, 4)),
        ("abc,cd->abd", (2, 3, 4), (4, 5)),  # two free letters merged
        ("abcd,cde->abe", (2, 3, 4, 5), (4, 5, 6)),  # two contracted letters merged
        ("bhld,bhmd->bhml", (1, 2, 3, 4), (1, 2, 5, 4)),  # the output transposed
    ],
)
def test_einsum_becomes_a_matmul_with_the_same_values(equation, shape_a, shape_b):
    model = einsum_model(equation, shape_a, shape_b)
    model, changed = EinsumToMatMul().apply(model)
    assert changed
    model = infer_shapes(model)
    assert [n.op_type for n in model.graph.node].count("MatMul") == 1
    assert "Einsum" not in [n.op_type for n in model.graph.node]
    assert next(n for n in model.graph.node if n.op_type == "MatMul").name == "/attn/Einsum"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape_a).astype(np.float32), rng.normal(size=shape_b).astype(np.float32)
    y = execute_onnx(model, {"a": a, "b": b})["y"]
    np.testing.assert_allclose(y, np.einsum(equation, a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("equation", ["ij,jk,kl->il", "ii,ij->j", "ij,jk", "...ij,...jk->...ik"])
def test_equations_without_two_operands_and_an_output_are_not_parsed(equation):
    assert parse(equation) is None


def test_a_letter_summed_inside_one_operand_is_left_to_the_lowering():
    model = einsum_model("ij,jk->k", (3, 3), (3, 3))
    assert EinsumToMatMul().apply(model)[1] is False
