"""The embedded default: the trained example forecaster shipped inside the package, with a few test
windows, so `qonnx-spartan build` and `simulate` work out of the box.

Made by examples/forecasting/train.py and examples/embed_default.py (see docs/results.md).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

DATA = files("qonnx_spartan") / "data"
MODEL = "forecaster.onnx"
INPUTS = "forecaster_inputs.npy"
INFO = "forecaster.json"


def path(name: str) -> Path:
    return Path(str(DATA / name))


def model_path() -> Path:
    return path(MODEL)


def inputs_path() -> Path:
    return path(INPUTS)


def info() -> dict:
    """Configuration, normalisation and test RMSEs of the embedded model."""
    return json.loads(path(INFO).read_text())
