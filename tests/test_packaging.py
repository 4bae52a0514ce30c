"""A plain (non-editable) install from a built wheel gives a working command with the templates inside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from qonnx_spartan.ops import FOLDERS

REPO = Path(__file__).resolve().parents[1]


def clean_copy(dest: Path) -> Path:
    """The tracked files only: building in the working tree would leave build/ there, and a stale
    build/lib could carry files into the wheel that the sources no longer have."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.split():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return dest


def test_wheel_carries_templates_and_a_working_command(tmp_path: Path, brevitas):
    dist = tmp_path / "dist"
    source = clean_copy(tmp_path / "qonnx-spartan")  # not "src": setuptools mis-builds a folder of that name
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next(dist.glob("qonnx_spartan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.name for p in (REPO / "templates").iterdir() if p.suffix in (".vhd", ".j2"))
    assert len(templates) >= 8
    for f in templates:
        assert f"qonnx_spartan/templates/{f}" in names
    assert "qonnx_spartan/transforms/lower.py" in names
    for folder in FOLDERS:  # every registered op folder, its lowering patterns with it
        assert f"qonnx_spartan/ops/{folder}/lower.py" in names, folder
    assert "qonnx_spartan/study/runner.py" in names  # the study subpackage
    for f in ("forecaster.onnx", "forecaster_inputs.npy", "forecaster.json"):  # the embedded default
        assert f"qonnx_spartan/data/{f}" in names
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
