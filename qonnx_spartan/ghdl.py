"""Run a built design's test bench in GHDL over integer vectors."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qonnx_spartan.backend import FILE_LIST, TB_FILE, TOP
from qonnx_spartan.errors import SpartanError

GHDL_FLAGS = ["--std=08", "-frelaxed"]


def ghdl_path() -> str | None:
    return shutil.which("ghdl")


def require_ghdl() -> str:
    path = ghdl_path()
    if path is None:
        raise SpartanError("GHDL is not installed (Debian: apt-get install ghdl)")
    return path


@dataclass
class SimResult:
    outputs: np.ndarray  # (vectors, output elements) integers
    cycles: np.ndarray  # (vectors,) cycles per inference


def design_sources(build_dir: Path) -> list[Path]:
    hdl = build_dir / "hdl"
    listing = hdl / FILE_LIST
    if not listing.is_file():
        raise SpartanError(f"{build_dir}: not a built design (no hdl/{FILE_LIST})")
    return [hdl / name for name in listing.read_text().split()]


def run_checked(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"GHDL {what} failed: " + " | ".join(detail[:8]))


def analyse(sources: list[Path], workdir: Path, extra_flags: list[str] = ()) -> None:
    ghdl = require_ghdl()
    for src in sources:
        run_checked(
            [ghdl, "-a", *GHDL_FLAGS, *extra_flags, f"--workdir={workdir}", str(src.resolve())],
            workdir,
            f"analysis of {src.name}",
        )


def simulate(build_dir: Path, vectors: np.ndarray, out_count: int) -> SimResult:
    """Stream every row of `vectors` through the design; return its outputs and cycle counts."""
    ghdl = require_ghdl()
    vectors = np.asarray(vectors, dtype=np.int64).reshape(len(vectors), -1)
    sources = design_sources(build_dir) + [build_dir / "sim" / TB_FILE]
    with tempfile.TemporaryDirectory(prefix="qs_ghdl_") as tmp:
        work = Path(tmp)
        in_file, out_file = work / "inputs.txt", work / "outputs.txt"
        in_file.write_text("".join(" ".join(map(str, row)) + "\n" for row in vectors))
        analyse(sources, work)
        tb = f"{TOP}_tb"
        run_checked([ghdl, "-e", *GHDL_FLAGS, f"--workdir={work}", tb], work, "elaboration")
        run_checked(
            [
                ghdl,
                "-r",
                *GHDL_FLAGS,
                f"--workdir={work}",
                tb,
                f"-gIN_FILE={in_file}",
                f"-gOUT_FILE={out_file}",
                "--ieee-asserts=disable",
            ],
            work,
            "simulation",
        )
        rows = [list(map(int, line.split())) for line in out_file.read_text().splitlines() if line.strip()]
    if len(rows) != len(vectors) or any(len(r) != out_count + 1 for r in rows):
        raise RuntimeError(f"GHDL simulation returned {len(rows)} result lines for {len(vectors)} vectors")
    table = np.array(rows, dtype=np.int64)
    return SimResult(outputs=table[:, 1:], cycles=table[:, 0])
