"""The budget spec: the tighter of cap and utilisation wins; files are read as YAML or JSON."""

from __future__ import annotations

import pytest

from qonnx_spartan.budget import Budget, load_budget
from qonnx_spartan.devices import DEVICES
from qonnx_spartan.errors import SpartanError


def test_default_is_the_whole_xc7s15():
    assert Budget().limits() == {"LUT": 8000, "LUTRAM": 2400, "FF": 16000, "BRAM18": 20, "DSP": 20}


def test_tighter_of_cap_and_utilization_wins():
    b = Budget(device="xc7s15", utilization=0.5, caps={"BRAM18": 4, "LUT": 6000})
    assert b.limits() == {"LUT": 4000, "LUTRAM": 1200, "FF": 8000, "BRAM18": 4, "DSP": 10}


def test_overflows_name_used_and_limit():
    assert Budget(caps={"DSP": 2}).overflows({"LUT": 1, "DSP": 3}) == {"DSP": (3, 2)}


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "b.yaml").write_text("device: XC7S6\nclock_mhz: 50\n")
    (tmp_path / "b.json").write_text('{"device": "xc7a35t", "caps": {"LUT": 100}}')
    assert load_budget(tmp_path / "b.yaml").device == "xc7s6"
    assert load_budget(tmp_path / "b.json").limits()["LUT"] == 100


def test_every_profile_is_consistent():
    for d in DEVICES.values():
        assert d.LUTRAM < d.LUT and d.BRAM18 % 2 == 0 and d.part.startswith(d.name)


def test_missing_budget_file(tmp_path):
    with pytest.raises(SpartanError, match="budget file not found"):
        load_budget(tmp_path / "none.yaml")
