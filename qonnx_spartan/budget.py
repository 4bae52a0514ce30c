"""The resource budget a design must fit: a device, optional per-resource caps and utilisation, a clock.

Written by users as YAML or JSON, e.g.

    device: xc7s15
    utilization: 0.9          # at most 90 % of every resource
    caps: {BRAM18: 12, DSP: 10}
    clock_mhz: 100
    estimator: vivado_coefficients.json   # optional: from `qonnx-spartan calibrate`

The tighter of a cap and the utilisation wins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qonnx_spartan.coefficients import FITTED, Coefficients
from qonnx_spartan.config_file import read_config, validated
from qonnx_spartan.devices import DEFAULT_DEVICE, DEVICES, Device
from qonnx_spartan.errors import SpartanError

#: Resource counts and rates are strict: `true` or `12.5` is a mistake, not 1 or 12 (pydantic would convert).
Count = Annotated[int, Field(ge=0, strict=True)]

#: The share of the fitted resources optional choices leave free (spendable).
HEADROOM = 0.05


class Caps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    LUT: Count | None = None
    LUTRAM: Count | None = None
    FF: Count | None = None
    BRAM18: Count | None = None
    DSP: Count | None = None


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = DEFAULT_DEVICE
    utilization: float | None = Field(default=None, gt=0, le=1, strict=True, allow_inf_nan=False)
    caps: Caps = Caps()
    clock_mhz: float = Field(default=100.0, gt=0, le=1000, strict=True, allow_inf_nan=False)
    #: LUT/FF coefficients fitted by `qonnx-spartan calibrate` to the user's tool (default: the packaged
    #: fit to yosys); the budget is where the estimate is checked, so it names the estimator too.
    estimator: Path | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, name: str) -> str:
        key = name.strip().lower()
        if key not in DEVICES:
            raise ValueError(f"unknown device '{name}' (known: {', '.join(DEVICES)})")
        return key

    def coefficients(self) -> Coefficients:
        return Coefficients.load(self.estimator) if self.estimator is not None else Coefficients.default()

    def with_estimator(self, path: Path | None) -> "Budget":
        """This budget with another coefficients file (none: unchanged); a missing or malformed file fails
        here, named."""
        if path is None:
            return self
        budget = self.model_copy(update={"estimator": path})
        budget.coefficients()
        return budget

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

    def spendable(self) -> dict[str, int]:
        """The limits less HEADROOM of the fitted resources (LUT, FF): what optional choices - lanes, block
        RAM left empty - aim for, since those estimates are within a few percent of synthesis
        (docs/estimator.md), not exact."""
        return {r: int(v * (1 - HEADROOM)) if r in FITTED else v for r, v in self.limits().items()}

    def overflows(self, totals: dict[str, int]) -> dict[str, tuple[int, int]]:
        """Resources over their limit, as {resource: (used, limit)}."""
        limits = self.limits()
        return {r: (int(totals[r]), limits[r]) for r in limits if totals.get(r, 0) > limits[r]}


def load_budget(path: str | Path) -> Budget:
    """Read a budget file, turning every problem into one SpartanError line naming the file and field."""
    path = Path(path)
    data = read_config(path, "budget")
    if data is None:  # an empty file is more likely a mistake than a wish for the defaults ({} says that)
        raise SpartanError(f"{path}: the budget file is empty (write {{}} for the default budget)")
    budget = validated(Budget, data, path, "budget", "device, utilization, caps, clock_mhz")
    if budget.estimator is not None:
        try:
            budget = budget.with_estimator(path.parent / budget.estimator)  # beside the budget
        except SpartanError as e:
            raise SpartanError(f"{path}: field 'estimator': {e}") from None
    return budget


def budget_to_json(budget: Budget) -> dict:
    return json.loads(budget.model_dump_json())
