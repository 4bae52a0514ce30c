"""Tidy an exported QONNX graph into the shape the lowering expects.

Shapes inferred, constants folded (Quant nodes kept: their float weights are what a plan re-quantises),
Gemm split into MatMul + Add under the Gemm's own name (qonnx's GemmToMatMul leaves the new nodes
unnamed).  Node names are kept where they are unique, because they carry the
Brevitas module names that plans and reports refer to.
"""

from __future__ import annotations

from functools import partial

from onnx import helper
from onnx.shape_inference import InferenceError
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import is_custom_op
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames, RemoveStaticGraphInputs, RemoveUnusedTensors

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.transforms.cleanup import cleanup, fold_constants, infer_shapes
from qonnx_spartan.transforms.quant import node_label


class Tidy(Transformation):
    """The model as qonnx's cleanup leaves it (sorted, parameters unique, unused tensors removed): a cleanup
    after Tidy changes nothing."""

    def apply(self, model: ModelWrapper):
        model = cleanup(model.transform(RemoveStaticGraphInputs(), cleanup=False))
        graph = model.graph
        if len(graph.input) != 1:
            raise SpartanError(
                f"the model has {len(graph.input)} inputs; one is supported (several: concatenate them on the host)"
            )
        dims = graph.input[0].type.tensor_type.shape.dim  # a symbolic dimension by its name, e.g. 'batch'
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise SpartanError(
                f"input '{graph.input[0].name}': shape {shape} is not static; export with a fixed input shape"
            )
        if shape[0] != 1 and not sequence_first(shape):
            raise SpartanError(
                f"input '{graph.input[0].name}': batch size {shape[0]}; export the model with a batch of 1"
            )
        for node in graph.node:
            if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
                node.domain = "qonnx.custom_op.general"
            elif is_custom_op(node.domain) and not is_custom_op(node.domain, node.op_type):
                raise SpartanError(f"{node_label(node)}: no custom op {node.op_type} in the domain {node.domain}")
        names = [n.name for n in graph.node]
        if "" in names or len(set(names)) != len(names):
            model = model.transform(GiveUniqueNodeNames(), make_deepcopy=False, cleanup=False)
        # The model is this apply's own copy, cleaned up by the first step.  The cleanup is idempotent and
        # reads only the nodes, their inputs and the initializers, so it runs again only after the steps
        # that change those: after renaming nodes, inferring shapes (value_info of used tensors) or removing
        # unused tensors it would change nothing.
        for step, changes_nodes in (
            (infer_shapes, False),
            (partial(fold_constants, exclude_op_types=["Quant"]), True),
            (SplitGemm(), True),
            (infer_shapes, False),
            (RemoveUnusedTensors(), False),
        ):
            try:
                if isinstance(step, Transformation):
                    model = model.transform(step, make_deepcopy=False, cleanup=False)
                else:
                    model = step(model)
                model = cleanup(model) if changes_nodes else model
            except InferenceError as e:
                raise SpartanError(
                    f"the model's tensor shapes contradict each other ({' '.join(str(e).split())})"
                ) from None
        return model, False


def sequence_first(shape: list[int]) -> bool:
    """(time, batch 1, features): torch's sequence-first layout (nn.MultiheadAttention's default), whose
    elements are in the order of (1, time, features); the lowering gives its buffers a batch axis."""
    return len(shape) == 3 and shape[1] == 1


class SplitGemm(Transformation):
    """Gemm (alpha = beta = 1, as Brevitas exports it) -> [Transposes of A, B] -> MatMul [-> Add], names kept;
    a transposed activation A is read through strides, transposed weights are folded into the ROM."""

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for index, node in enumerate(graph.node):
            if node.op_type != "Gemm":
                continue
            attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attr.get("alpha", 1.0) != 1.0 or attr.get("beta", 1.0) != 1.0:
                raise SpartanError(
                    f"{node_label(node)}: only Gemm with alpha = beta = 1 is supported; write x @ W (QuantLinear)"
                )
            a, b = node.input[0], node.input[1]
            new = []
            if attr.get("transA", 0):
                a_t = model.make_new_valueinfo_name()
                new.append(helper.make_node("Transpose", [a], [a_t], name=f"{node.name}_transpose_a", perm=[1, 0]))
                a = a_t
            if attr.get("transB", 0):
                b_t = model.make_new_valueinfo_name()
                new.append(helper.make_node("Transpose", [b], [b_t], name=f"{node.name}_transpose", perm=[1, 0]))
                b = b_t
            has_bias = len(node.input) > 2 and node.input[2]
            product = model.make_new_valueinfo_name() if has_bias else node.output[0]
            new.append(helper.make_node("MatMul", [a, b], [product], name=node.name))
            if has_bias:
                new.append(
                    helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_bias")
                )
            graph.node.remove(node)
            for k, n in enumerate(new):
                graph.node.insert(index + k, n)
            return model, True
        return model, False
