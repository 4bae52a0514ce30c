"""Small graph edits shared by the canonicalising transformations (transforms/canonicalise.py)."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

#: Ops that only move elements: a per-tensor Quant gives the same integers before or after them.
VIEW_OPS = ("Reshape", "Transpose")


def consumers(model: ModelWrapper, tensor: str) -> list:
    return [n for n in model.graph.node if tensor in n.input]


def producer(model: ModelWrapper, tensor: str):
    for node in model.graph.node:
        if tensor in node.output:
            return node
    return None


def only_consumer(model: ModelWrapper, tensor: str):
    """The one node reading `tensor`, or None when several (or none) do or it is the graph output."""
    users = consumers(model, tensor)
    if len(users) != 1 or any(o.name == tensor for o in model.graph.output):
        return None
    return users[0]


def scalar(model: ModelWrapper, tensor: str) -> float | None:
    """The value of a one-element constant input, else None."""
    value = model.get_initializer(tensor)
    if value is None or np.asarray(value).size != 1:
        return None
    return float(np.asarray(value).ravel()[0])


def constant_operand(model: ModelWrapper, node) -> tuple[int, float] | None:
    """(index of the data input, value) of a binary node with one scalar-constant input, else None."""
    if len(node.input) != 2:
        return None
    for k in (1, 0):
        value = scalar(model, node.input[k])
        if value is not None and model.get_initializer(node.input[1 - k]) is None:
            return 1 - k, value
    return None


def perm_of(node, rank: int) -> list[int]:
    perm = get_by_name(node.attribute, "perm")
    return list(perm.ints) if perm is not None else list(reversed(range(rank)))


def new_constant(model: ModelWrapper, values, dtype=np.float32) -> str:
    name = model.make_new_valueinfo_name()
    model.set_initializer(name, np.asarray(values, dtype=dtype))
    return name


def reshape_node(model: ModelWrapper, name: str, src: str, dst: str, shape) -> object:
    return helper.make_node("Reshape", [src, new_constant(model, list(shape), np.int64)], [dst], name=name)


def transpose_node(name: str, src: str, dst: str, perm) -> object:
    return helper.make_node("Transpose", [src], [dst], name=name, perm=[int(p) for p in perm])


def forget_shapes(model: ModelWrapper, tensors) -> None:
    """Drop the inferred shapes of rewritten tensors, so that shape inference computes them afresh."""
    names = set(tensors)
    keep = [v for v in model.graph.value_info if v.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def replace_node(model: ModelWrapper, old, new: list) -> None:
    """Put `new` where `old` was (the cleanup sorts the graph again afterwards)."""
    graph = model.graph
    index = list(graph.node).index(old)
    graph.node.remove(old)
    for k, node in enumerate(new):
        graph.node.insert(index + k, node)


def opset(model: ModelWrapper) -> int:
    return next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), 13)


def fresh(model: ModelWrapper, hint: str) -> str:
    """A tensor name not used in the graph yet: `hint`, or `hint_k`."""
    taken = set(model.get_all_tensor_names())
    name, k = hint, 0
    while name in taken:
        k += 1
        name = f"{hint}_{k}"
    return name
