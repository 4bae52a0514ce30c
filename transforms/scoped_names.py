"""Node names from torch's default (dynamo) exporter as the TorchScript exporter writes them.

The default exporter names nodes `node_MatMul_13`, `node__symbolic_5` and records each node's module path in
its `namespace` metadata (`: TST/layers.0: Layer/layers.0.q: QuantLinear/...`).  Plans, reports and memory
placement key layers by the module scope in a node's name (`/layers.0/q/MatMul`,
`<scope>/<proxy>/export_handler/Quant`: qonnx_spartan/plan.py), so each such node is renamed to that
scoped name, made unique as TorchScript does (`_1`, `_2`), and one plan serves both exporters.
"""

from __future__ import annotations

from collections import Counter

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

NAMESPACE_KEY = "namespace"


def scope_of(namespace: str) -> list[str]:
    """The scope parts of a namespace record, outermost first, each relative to its parent as TorchScript
    writes them (`emb`, `weight_quant`, `export_handler`), without the root and the node's own entry."""
    paths = [segment.split(":")[0].strip() for segment in namespace.split("/")][1:-1]
    parts, parent = [], ""
    for path in filter(None, paths):
        parts.append(path[len(parent) + 1 :] if parent and path.startswith(parent + ".") else path)
        parent = path
    return parts


class ScopedNames(Transformation):
    def apply(self, model: ModelWrapper):
        nodes = [n for n in model.graph.node if any(p.key == NAMESPACE_KEY for p in n.metadata_props)]
        if not nodes:
            return model, False
        taken = Counter(n.name for n in model.graph.node if n not in nodes)
        for node in nodes:
            namespace = next(p.value for p in node.metadata_props if p.key == NAMESPACE_KEY)
            base = "/" + "/".join([*scope_of(namespace), node.op_type])
            name = base if not taken[base] else f"{base}_{taken[base]}"
            taken[base] += 1
            node.name = name
        return model, False
