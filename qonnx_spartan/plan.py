"""Mixed-precision plans: bit widths and memory styles per layer, one file for QAT training and the tool.

A plan is YAML or JSON mapping a key to an entry, e.g.

    encoder.q_proj: {weight_bits: 6, out_mem_style: block}
    encoder.softmax_quant: {act_bits: 6}
    encoder.ffn1: {weight_bits: 4, weight_mem_style: distributed}

A key is a Brevitas module name (`model.named_modules()`, what examples/forecasting/train.py --plan takes)
or an exported node or tensor name.  The TorchScript exporter names nodes after their module's scope
("/encoder/q_proj/MatMul"), so a module names every node in its scope.  Module keys are the modules that own
a quantiser, as in training: a typo fails instead of silently matching nothing.
"""

from __future__ import annotations

import json
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, RootModel, ValidationError

from qonnx_spartan.config_file import read_config
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.memory import STYLES

BITS = (2, 8)
#: The Brevitas quantiser proxies; an exported Quant node is named "<module scope>/<proxy>/export_handler/Quant".
PROXIES = ("weight_quant", "bias_quant", "input_quant", "act_quant", "output_quant")

Bits = Annotated[int, Field(ge=BITS[0], le=BITS[1])]


class PlanEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    weight_bits: Optional[Bits] = None
    act_bits: Optional[Bits] = None
    out_mem_style: Optional[Literal[STYLES]] = None  # the layer's output buffer
    weight_mem_style: Optional[Literal[STYLES]] = None  # the layer's weight memories (ROMs)


FIELDS = tuple(PlanEntry.model_fields)


class Plan(RootModel[dict[str, PlanEntry]]):
    _source: str = PrivateAttr(default="plan")

    def items(self):
        return self.root.items()

    def where(self, key: str) -> str:
        """How error messages name an entry: the file and the key."""
        return f"{self._source}: entry '{key}'"

    def to_json(self) -> dict:
        return self.model_dump(exclude_none=True)

    def bit_widths(self) -> dict[str, dict[str, int]]:
        """The entries that set bit widths, with those fields only: what QAT training takes (memory styles
        are the build's, and the search also places memories by node name)."""
        widths = {key: {f: v for f, v in entry.items() if f.endswith("_bits")} for key, entry in self.to_json().items()}
        return {key: fields for key, fields in widths.items() if fields}


def load_plan(path: str | Path) -> Plan:
    """Read a plan file, turning every problem into one SpartanError line naming the file and the entry."""
    path = Path(path)
    data = read_config(path, "plan")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpartanError(f"{path}: a plan is a mapping of module or node names to entries ({', '.join(FIELDS)})")
    try:
        plan = Plan.model_validate({str(k): v for k, v in data.items()})  # YAML reads a key 0 as a number
    except ValidationError as e:
        raise SpartanError(f"{path}: {describe_plan_error(e)}") from None
    plan._source = str(path)
    return plan


def describe_plan_error(e: ValidationError) -> str:
    """The first validation error as "entry 'key': what is wrong"."""
    err = e.errors()[0]
    key, field = (list(err["loc"]) + [None])[:2]
    value = json.dumps(err.get("input"), default=str)
    if field is None:
        msg = f"not a mapping of fields ({', '.join(FIELDS)}) but {value}"
    elif err["type"] == "extra_forbidden":
        msg = f"unknown field '{field}' (fields: {', '.join(FIELDS)})"
    elif field.endswith("_bits") and err["type"] in ("greater_than_equal", "less_than_equal"):
        msg = f"{field} {value} is out of range ({BITS[0]} to {BITS[1]})"
    elif field.endswith("_bits"):
        msg = f"{field} must be a whole number from {BITS[0]} to {BITS[1]}, not {value}"
    else:
        msg = f"{field} {value} is not one of {', '.join(STYLES)}"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return f"entry '{key}': {msg}{more}"


def scope_path(name: str) -> list[str] | None:
    """The module path of a scoped exported name, as its dotted parts: '/enc/enc.0/seq/seq.0/MatMul' ->
    [enc, 0, seq, 0, MatMul]; None for a name outside any scope.  The exporter writes a scope relative to
    its parent module, but a container's child ('enc.0') relative to the container's parent, so a part
    that starts with the tail of the path so far does not repeat it."""
    if not name.startswith("/"):
        return None
    path: list[str] = []
    for part in name[1:].split("/"):
        items = part.split(".")
        overlap = max(k for k in range(len(items)) if k <= len(path) and path[len(path) - k :] == items[:k])
        path += items[overlap:]
    return path


def quantiser_module(name: str) -> str | None:
    """The Brevitas module owning the quantiser an exported Quant node is named after, if it is one."""
    path = scope_path(name)
    if path is None or len(path) < 4 or path[-2:] != ["export_handler", "Quant"] or path[-3] not in PROXIES:
        return None
    return ".".join(path[:-3])


def quantiser_proxy(name: str) -> str | None:
    """Which Brevitas proxy (weight_quant, act_quant, ...) an exported Quant node comes from, if any."""
    return scope_path(name)[-3] if quantiser_module(name) else None


class Namespace:
    """The names of one model that plan keys are matched against: its node and tensor names, and the
    Brevitas modules that own its quantisers."""

    def __init__(self, names: Iterable[str]):
        self.names = set(names)
        self.modules = {m for m in map(quantiser_module, self.names) if m}

    def check(self, plan: Plan, keys: Iterable[str] | None = None) -> None:
        """Every key (of `keys`, default all) must name a module, node or tensor of the model; the known
        names closest to a wrong key are listed first."""
        for key in plan.root if keys is None else keys:
            if key not in self.modules and key not in self.names:
                known = sorted(self.modules) or sorted(n for n in self.names if n)
                close = get_close_matches(key, known, n=3)
                known = close + [k for k in known if k not in close]
                listed = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
                raise SpartanError(f"{plan.where(key)}: the model has no module or node of that name (known: {listed})")

    def selects(self, key: str, names: Iterable[str]) -> bool:
        """Whether `key` names something called by one of `names` (a node's name and outputs, a layer's)."""
        if key not in self.modules:
            return any(name == key for name in names)
        parts = key.split(".")
        return any((path := scope_path(name)) is not None and path[: len(parts)] == parts for name in names)
