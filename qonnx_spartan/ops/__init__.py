"""The custom-op domain `qonnx_spartan.ops` and its registry.

Each op kind is one folder (ops that share an engine share the engine's folder): its `__init__` lists the
op classes in `OPS`, its `lower.py` the lowering patterns that create them in `PATTERNS`.  FOLDERS is the
registry: qonnx finds an op by the class named in `__all__`, the lowering walks the folders' patterns, the
estimator's coefficient groups and the tests' op lists are the registered ops'.
"""

from importlib import import_module

from qonnx_spartan.ops.base import DOMAIN

#: One line per op folder.
FOLDERS = ("mac", "elementwise", "softmax", "table", "layernorm")


def registered(op):
    """An op class as the registry takes it: naming its template and its coefficient group, without which
    it could be neither generated nor estimated."""
    if not (op.template and op.resource_group):
        raise TypeError(f"op {op.__name__}: name its template and its coefficient group (resource_group)")
    return op


#: Every op class by its op type.
OPS = {op.__name__: registered(op) for folder in FOLDERS for op in import_module(f"{__name__}.{folder}").OPS}

__all__ = ["DOMAIN", *OPS]


def __getattr__(name: str):
    """The op classes as attributes of the domain, where qonnx looks them up."""
    if name in OPS:
        return OPS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def patterns() -> list:
    """Every folder's lowering patterns.  Imported when the lowering asks: a pattern module uses the
    lowering's helpers (transforms/), which use the ops."""
    return [pattern for folder in FOLDERS for pattern in import_module(f"{__name__}.{folder}.lower").PATTERNS]
