"""The estimator's calibrated part: LUT and FF of each hardware part as a weighted sum of its features.

BRAM18, DSP and LUTRAM are counted exactly from memory geometry and multiplier widths.  LUT and FF depend
on what the synthesis tool makes of the logic, so each part (an op's engine, a memory, the top level's
control) states structural features - register bits, adder bits, counter bits, ROM columns - and the
weights here turn them into counts.  The shipped weights (qonnx_spartan/data/coefficients.json) are fitted
to yosys synth_xilinx by calibration/sweep.py; `qonnx-spartan calibrate` fits a user's own, e.g. to
Vivado's hierarchical utilisation reports (docs/estimator.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from qonnx_spartan.errors import SpartanError

#: The resources the coefficients model; the others are exact.
FITTED = ("LUT", "FF")
DEFAULT_FILE = "coefficients.json"


class CoefficientsFile(BaseModel):
    """The data file: which tool the weights model, and group -> resource -> feature -> weight."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    groups: dict[str, dict[str, dict[str, float]]]
    fit: dict = {}  # how they were fitted: rows, designs, residuals


@dataclass(frozen=True)
class Coefficients:
    tool: str
    groups: dict[str, dict[str, dict[str, float]]]
    fit: dict = field(default_factory=dict)

    def apply(self, group: str, features: dict[str, float]) -> dict[str, int]:
        """LUT and FF of one part from its features.  A group the coefficients do not have is an error: a part
        nobody calibrated would otherwise cost nothing."""
        if group not in self.groups:
            raise SpartanError(
                f"the coefficients ({self.tool}) have no group '{group}' (they have {', '.join(sorted(self.groups))}); "
                "fit them to synthesised designs with that part: qonnx-spartan calibrate (docs/estimator.md)"
            )
        weights = self.groups[group]
        return {r: max(0, round(sum(weights.get(r, {}).get(f, 0.0) * v for f, v in features.items()))) for r in FITTED}

    @staticmethod
    @lru_cache(maxsize=1)
    def default() -> "Coefficients":
        return Coefficients.from_text(
            (files("qonnx_spartan") / "data" / DEFAULT_FILE).read_text(), "the packaged coefficients"
        )

    @staticmethod
    def load(path: str | Path) -> "Coefficients":
        path = Path(path)
        if not path.is_file():
            raise SpartanError(f"{path}: coefficients file not found")
        return _load_cached(path.resolve(), path.stat().st_mtime_ns)

    @staticmethod
    def from_text(text: str, origin: str) -> "Coefficients":
        try:
            data = CoefficientsFile.model_validate(json.loads(text))
        except json.JSONDecodeError as e:
            raise SpartanError(f"{origin}: not JSON ({e.msg}, line {e.lineno})") from None
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "top level"
            raise SpartanError(f"{origin}: coefficients field '{where}': {err['msg']}") from None
        return Coefficients(data.tool, data.groups, data.fit)

    def save(self, path: str | Path) -> None:
        doc = {"tool": self.tool, "groups": self.groups, "fit": self.fit}
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def fitted(group: str, features: dict[str, float], coefficients: Coefficients | None = None) -> dict[str, int]:
    """LUT and FF of a part with the given (or the packaged) coefficients."""
    return (coefficients or Coefficients.default()).apply(group, features)


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> Coefficients:
    """Estimates run many times per build (lanes, memory placement): a file is read once per version."""
    return Coefficients.from_text(path.read_text(errors="replace"), str(path))
