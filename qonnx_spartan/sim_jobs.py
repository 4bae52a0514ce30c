"""Vectors split over simulator processes, one per core: the part both simulators (GHDL, Verilator) share.

Each process reads its share of the vectors from a text file (one vector per line) and writes one result
line per vector as it finishes it, so the runner can report progress while they run."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

#: Below this many vectors a second simulator process costs more than it saves.
MIN_VECTORS_PER_JOB = 8
PROGRESS_SECONDS = 10


@dataclass
class SimResult:
    outputs: np.ndarray  # (vectors, output elements) integers
    cycles: np.ndarray  # (vectors,) cycles per inference


def lines_in(path: Path) -> int:
    """Result lines a running simulation has written so far."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def job_count(vectors: int, jobs: int | None) -> int:
    return max(1, min(jobs or os.cpu_count() or 1, vectors // MIN_VECTORS_PER_JOB or 1))


def run_jobs(
    lines: list[str],
    command: Callable[[Path, Path], list[str]],
    work: Path,
    what: str,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[str]]:
    """Run `command(in_file, out_file)` on `jobs` shares of the input `lines`; return every result line,
    split into its fields, in the order of the inputs.  `progress(done, total)` is called every few seconds."""
    running = []
    for k, share in enumerate(np.array_split(np.arange(len(lines)), job_count(len(lines), jobs))):
        in_file, out_file = work / f"inputs{k}.txt", work / f"outputs{k}.txt"
        in_file.write_text("".join(lines[i] + "\n" for i in share))
        proc = subprocess.Popen(
            command(in_file, out_file), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        running.append((proc, out_file))
    while progress and any(proc.poll() is None for proc, _ in running):
        try:
            next(proc for proc, _ in running if proc.poll() is None).wait(timeout=PROGRESS_SECONDS)
        except subprocess.TimeoutExpired:
            progress(sum(lines_in(out_file) for _, out_file in running), len(lines))
    rows = []
    for proc, out_file in running:
        output, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{what} simulation failed: " + " | ".join(output.strip().splitlines()[:8]))
        rows += [line.split() for line in out_file.read_text().splitlines() if line.strip()]
    if len(rows) != len(lines):
        raise RuntimeError(f"{what} simulation returned {len(rows)} result lines for {len(lines)} vectors")
    return rows
