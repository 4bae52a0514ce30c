"""qonnx's model cleanup, wrapping, shape inference and constant folding, with their graph scans replaced by
lookups.

qonnx's SortGraph finds every input's producer, and GiveUniqueParameterTensors every input's initializer, by
scanning the graph, which made the cleanups most of the time to estimate a QONNX file (about 15 ms each on
the forecaster).  `cleanup` runs the same five steps in the same order; the three rewritten here index the
graph once.  Wrapping a model (`ModelWrapper(proto)`, also at the end of qonnx's InferShapes) looks up
every node's tensors in lists rebuilt per tensor to find initializers without a shape (about 10 ms per
wrap): `wrap` and `infer_shapes` find them with one index.  FoldConstants decodes every initializer to
find a node to fold: `fold_constants` runs it only when there is one.  Each leaves the model exactly as
qonnx's would (tests/test_flow.py compares them).
"""

from __future__ import annotations

import onnx.shape_inference
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
    SortCommutativeInputsInitializerLast,
)
from qonnx.transformation.infer_shapes import _hide_finn_ops, _restore_finn_ops
from qonnx.util.basic import random_string
from toposort import toposort_flatten


def cleanup(model: ModelWrapper) -> ModelWrapper:
    """The model as `model.cleanup()` leaves it."""
    model = model.transform(RemoveUnusedTensors(), cleanup=False, make_deepcopy=False)
    model = model.transform(RemoveStaticGraphInputs(), cleanup=False, make_deepcopy=False)
    sort_graph(model)
    sort_commutative_inputs(model)
    give_unique_parameters(model)
    return model


def sort_graph(model: ModelWrapper) -> None:
    """qonnx's SortGraph: nodes in topological order (toposort's, over each node's producers); a node with
    no producer stays only if one of its inputs is a graph input or an initializer."""
    graph = model.graph
    if len(graph.node) == 1:
        return
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for tensor in node.output:
            producer.setdefault(tensor, index)  # the first producer, as qonnx's find_producer
    sources = {t.name for t in graph.initializer} | {t.name for t in graph.input}
    dependencies = {}
    for index, node in enumerate(nodes):
        predecessors = {producer[t] for t in node.input if t in producer}
        if predecessors:
            dependencies[index] = predecessors
        elif any(t in sources for t in node.input):
            dependencies[index] = set()
    del graph.node[:]
    graph.node.extend(nodes[i] for i in toposort_flatten(dependencies))


def sort_commutative_inputs(model: ModelWrapper) -> None:
    """qonnx's SortCommutativeInputsInitializerLast: a commutative node's initializer inputs last, each group
    in its order (qonnx decodes each input's initializer to tell)."""
    initializers = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in SortCommutativeInputsInitializerLast.SUPPORTED_COMMUTATIVE_OPS:
            dynamic = [name for name in node.input if name not in initializers]
            constant = [name for name in node.input if name in initializers]
            for position, name in enumerate(dynamic + constant):
                node.input[position] = name


def give_unique_parameters(model: ModelWrapper) -> None:
    """qonnx's GiveUniqueParameterTensors: an initializer read by a second input gets a copy of its own,
    under a new random name (`make_new_valueinfo_name`'s, drawn the same way)."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    taken = set(model.get_all_tensor_names())
    seen: set[str] = set()
    for node in graph.node:
        for position, tensor in enumerate(list(node.input)):
            if tensor not in initializers:
                continue
            if tensor not in seen:
                seen.add(tensor)
                continue
            copy = random_string()
            while copy in taken:
                copy = random_string()
            value = numpy_helper.to_array(initializers[tensor])
            copied = numpy_helper.from_array(value, copy)
            graph.initializer.append(copied)
            graph.value_info.append(helper.make_tensor_value_info(copy, copied.data_type, value.shape))
            model.set_tensor_datatype(copy, model.get_tensor_datatype(tensor))
            node.input[position] = copy
            initializers[copy] = copied
            taken.add(copy)


def wrap(proto) -> ModelWrapper:
    """`ModelWrapper(proto)`: an initializer that a node reads or writes and that has no value_info gets
    one, in the order qonnx adds them."""
    model = ModelWrapper(proto, fix_missing_initializer_valueinfo=False)
    graph = model.graph
    described = {info.name for info in (*graph.input, *graph.output, *graph.value_info)}
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        for name in (*node.input, *node.output):
            if name in initializers and name not in described:
                model.set_tensor_shape(name, list(initializers[name].dims), dtype=initializers[name].data_type)
                described.add(name)
    return model


def infer_shapes(model: ModelWrapper) -> ModelWrapper:
    """qonnx's InferShapes: ONNX shape inference with every custom op standing in as an op of its shape."""
    hidden = _hide_finn_ops(model)
    model = wrap(onnx.shape_inference.infer_shapes(model.model))
    _restore_finn_ops(model, hidden)
    return model


def fold_constants(model: ModelWrapper, exclude_op_types: list[str]) -> ModelWrapper:
    """qonnx's FoldConstants, which decodes every initializer to look for a node to fold, run only when a
    node can be folded: not excluded, and without inputs, with only initializers, or a Shape of a known one."""
    initializers = {t.name for t in model.graph.initializer}

    def foldable(node) -> bool:
        if node.op_type in exclude_op_types:
            return False
        if not node.input or all(name in initializers for name in node.input):
            return True
        return node.op_type == "Shape" and model.get_tensor_shape(node.input[0]) is not None

    if not any(foldable(node) for node in model.graph.node):
        return model
    return model.transform(FoldConstants(exclude_op_types=exclude_op_types), make_deepcopy=False, cleanup=False)
