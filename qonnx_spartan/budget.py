"""The resource budget a design must fit: a device, optional per-resource caps and utilisation, a clock.

Written by users as YAML or JSON, e.g.

    device: xc7s15
    utilization: 0.9          # at most 90 % of every resource
    caps: {BRAM18: 12, DSP: 10}
    clock_mhz: 100

The tighter of a cap and the utilisation wins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator

from qonnx_spartan.devices import DEFAULT_DEVICE, DEVICES, Device
from qonnx_spartan.errors import SpartanError


class Caps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    LUT: NonNegativeInt | None = None
    LUTRAM: NonNegativeInt | None = None
    FF: NonNegativeInt | None = None
    BRAM18: NonNegativeInt | None = None
    DSP: NonNegativeInt | None = None


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = DEFAULT_DEVICE
    utilization: float | None = Field(default=None, gt=0, le=1)
    caps: Caps = Caps()
    clock_mhz: float = Field(default=100.0, gt=0, le=1000)

    @field_validator("device")
    @classmethod
    def _known_device(cls, name: str) -> str:
        key = name.strip().lower()
        if key not in DEVICES:
            raise ValueError(f"unknown device '{name}' (known: {', '.join(DEVICES)})")
        return key

    @property
    def profile(self) -> Device:
        return DEVICES[self.device]

    def limits(self) -> dict[str, int]:
        """The usable amount of each resource."""
        limits = {}
        for resource, capacity in self.profile.capacities().items():
            limit = capacity
            if self.utilization is not None:
                limit = min(limit, math.floor(capacity * self.utilization))
            cap = getattr(self.caps, resource)
            if cap is not None:
                limit = min(limit, cap)
            limits[resource] = limit
        return limits

    def overflows(self, totals: dict[str, int]) -> dict[str, tuple[int, int]]:
        """Resources over their limit, as {resource: (used, limit)}."""
        limits = self.limits()
        return {r: (int(totals[r]), limits[r]) for r in limits if totals.get(r, 0) > limits[r]}


def load_budget(path: str | Path) -> Budget:
    """Read a budget file, turning every problem into one SpartanError line naming the file and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpartanError(f"{path}: budget file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpartanError(f"{path}: cannot read budget file ({e.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise SpartanError(f"{path}: not valid YAML or JSON{line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpartanError(f"{path}: a budget is a mapping of fields (device, utilization, caps, clock_mhz)")
    try:
        return Budget.model_validate(data)
    except ValidationError as e:
        raise SpartanError(f"{path}: {describe_validation_error(e)}") from None


def describe_validation_error(e: ValidationError) -> str:
    """The first pydantic error as 'field a.b: message'."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return f"field '{field}': {msg}{more}"


def budget_to_json(budget: Budget) -> dict:
    return json.loads(budget.model_dump_json())
