"""A Conv1d's activation taken in time-major order: the transpose after a function moves before it.

`gelu(conv(x)).transpose(1, 2)` with quantisers: Conv -> Quant -> f -> Quant -> Transpose, f any graph of
elementwise functions (a table, ops/table) of the Conv's quantised result and scalar constants.  The
table reads and writes its buffer in order, so whatever reads the transposed view after it (a LayerNorm,
a residual add) would read it out of order.  f and a per-tensor Quant act on each element alone, so they
commute with the transpose: Conv -> Quant -> Transpose -> f -> Quant.  The Conv then writes its result
time-major (the layout of the transpose that alone reads it, ops/mac/lower.py), the table reads it in
order, and its reader takes the table's result as it is.

Only after a Conv1d and for the (B, C, T) <-> (B, T, C) transpose: other writers, or other views, may not
be able to write in the views' order, and a function the table cannot read in order would be refused where
it was not.  A function graph of ReLUs and scalar Muls alone is QuantBeforeViews's (quant_before_views.py).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.ops.table.functions import FUNCTIONS
from qonnx_spartan.transforms.quant_before_views import data_index, per_tensor
from qonnx_spartan.transforms.rewrite import consumers, forget_shapes, fresh, perm_of, producer, scalar


def function_graph(model: ModelWrapper, quant) -> tuple[list, str] | None:
    """(the elementwise nodes computing the Quant's input from one activation and scalar constants, that
    activation), when every value they compute is read only by them or the Quant."""
    nodes, pending, sources = {}, [quant.input[0]], set()
    while pending:
        tensor = pending.pop()
        node = producer(model, tensor)
        if node is None or node.op_type not in FUNCTIONS or node.op_type == "Quant":
            sources.add(tensor)
            continue
        if node.name in nodes:
            continue
        nodes[node.name] = node
        for t in node.input:
            if t and scalar(model, t) is None:
                pending.append(t)
    if len(sources) != 1 or not nodes:
        return None
    inside = set(nodes) | {quant.name}
    for node in nodes.values():
        if any(c.name not in inside for c in consumers(model, node.output[0])):
            return None
    order = [n for n in model.graph.node if n.name in nodes]
    return order, sources.pop()


def conv_result(model: ModelWrapper, tensor: str) -> bool:
    """Whether `tensor` is the per-tensor quantised result of a Conv (through ReLUs and scalar Muls)."""
    quant = producer(model, tensor)
    if quant is None or quant.op_type != "Quant" or not per_tensor(model, quant):
        return False
    node = producer(model, quant.input[0])
    while node is not None and node.op_type in ("Relu", "Mul") and data_index(model, node) is not None:
        node = producer(model, node.input[data_index(model, node)])
    return node is not None and node.op_type == "Conv"


class TransposeBeforeFunction(Transformation):
    def apply(self, model: ModelWrapper):
        for transpose in list(model.graph.node):
            if transpose.op_type != "Transpose" or perm_of(transpose, 3) != [0, 2, 1]:
                continue
            quant = producer(model, transpose.input[0])
            if quant is None or quant.op_type != "Quant" or not per_tensor(model, quant):
                continue
            if [c.name for c in consumers(model, quant.output[0])] != [transpose.name]:
                continue
            if any(o.name == quant.output[0] for o in model.graph.output):
                continue
            found = function_graph(model, quant)
            if found is None:
                continue
            nodes, x = found
            if all(n.op_type in ("Relu", "Mul") for n in nodes) or not conv_result(model, x):
                continue
            if {c.name for c in consumers(model, x)} - {n.name for n in nodes}:
                continue  # the Conv's result is read elsewhere too
            self.reorder(model, transpose, quant, nodes, x)
            return model, True
        return model, False

    @staticmethod
    def reorder(model: ModelWrapper, transpose, quant, nodes: list, x: str) -> None:
        """x -> f -> Quant -> Transpose  as  x -> Transpose -> f -> Quant; the Quant writes the Transpose's
        old output, so every reader is unchanged; the Transpose keeps its name."""
        graph = model.graph
        moved = fresh(model, f"{x}_transposed")
        for node in nodes:
            for k, t in enumerate(node.input):
                if t == x:
                    node.input[k] = moved
        old_quant_output = quant.output[0]
        quant.output[0] = transpose.output[0]
        transpose.input[0], transpose.output[0] = x, moved
        graph.node.remove(transpose)
        graph.node.insert(list(graph.node).index(nodes[0]), transpose)
        forget_shapes(model, [n.output[0] for n in nodes] + [old_quant_output, quant.output[0]])
