"""Tiny float graphs for the canonicalisation rules' tests: build one, apply a rule, compare outputs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qonnx_spartan.transforms.canonicalise import Canonicalise
from qonnx_spartan.transforms.cleanup import cleanup, infer_shapes


def graph_model(nodes, in_shape, out_shape, initializers: dict, opset: int = 13) -> ModelWrapper:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("qonnx.custom_op.general", 1)]
    return infer_shapes(cleanup(ModelWrapper(helper.make_model(graph, opset_imports=opsets))))


def quant(name: str, src: str, dst: str, scale: float, bits: int = 8):
    """A per-tensor signed Quant node and its parameter initializers."""
    node = helper.make_node(
        "Quant",
        [src, f"{name}_s", f"{name}_z", f"{name}_b"],
        [dst],
        name=name,
        domain="qonnx.custom_op.general",
        signed=1,
        narrow=0,
        rounding_mode="ROUND",
    )
    return node, {f"{name}_s": np.float32(scale), f"{name}_z": np.float32(0), f"{name}_b": np.float32(bits)}


def outputs(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x.astype(np.float32)})["y"]


def canonical_equivalent(model: ModelWrapper, in_shape, seed: int = 0) -> ModelWrapper:
    """Canonicalise, check that something changed and that the outputs are the same on random inputs."""
    x = np.random.default_rng(seed).normal(size=in_shape).astype(np.float32)
    before = outputs(model, x)
    after_model = model.transform(Canonicalise(), cleanup=False)
    assert after_model.model.SerializeToString() != model.model.SerializeToString()
    np.testing.assert_allclose(outputs(after_model, x), before, rtol=1e-5, atol=1e-6)
    return after_model


def op_types(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]
