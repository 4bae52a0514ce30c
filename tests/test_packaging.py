"""A plain (non-editable) install from a built wheel gives a working command with the templates inside."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_carries_templates_and_a_working_command(tmp_path: Path, brevitas):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next(dist.glob("qonnx_spartan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("qs_arith.vhd", "qs_ram.vhd", "rom.vhd.j2", "mac.vhd.j2", "top.vhd.j2", "tb.vhd.j2"):
        assert f"qonnx_spartan/templates/{f}" in names
    assert "qonnx_spartan/transforms/lower.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "qonnx-spartan = qonnx_spartan.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import qonnx_spartan; print(qonnx_spartan.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(target))
    devices = subprocess.run(
        [str(target / "bin" / "qonnx-spartan"), "devices"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert devices.returncode == 0 and "xc7s15" in devices.stdout

    # the installed copy builds a design: the templates are found inside the installed package
    from brevitas_models import export, make_mlp

    model = export(make_mlp([3, 4, 2], 5), tmp_path / "m.onnx", (1, 3))
    built = subprocess.run(
        [str(target / "bin" / "qonnx-spartan"), "build", str(model), "-o", str(tmp_path / "out")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / "hdl" / "qs_top.vhd").is_file()
    bad = subprocess.run(
        [str(target / "bin" / "qonnx-spartan"), "build", "missing.onnx", "-o", "x"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "missing.onnx" in bad.stderr
