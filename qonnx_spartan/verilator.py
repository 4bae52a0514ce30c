"""The compiled simulator: a build's design as GHDL's synthesis writes it in Verilog, compiled by Verilator
together with a C++ test bench (templates/qs_harness.cpp) into one native program.

The program is compiled once per build and kept in SIM/verilator/, keyed by a digest of everything it is
made from (the VHDL, the harness, the cell models, the flags, the tool versions): a changed design is
compiled again, an unchanged one is reused.  The harness follows the VHDL test bench's protocol and counts
cycles as it does, so both simulators answer the same lines for the same vectors.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Callable

import numpy as np

from qonnx_spartan.atomic import write_atomically
from qonnx_spartan.backend import TOP, max_cycles, stream_ports
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.ghdl import design_sources, require_ghdl
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.sim_jobs import SimResult, run_jobs
from qonnx_spartan.synth import corrected_netlist, ghdl_verilog

HARNESS = "qs_harness.cpp"
#: The XC7 cells' models in Verilog, from the same UG953 definitions as sim/qs_xc7_cells.vhd.
CELL_MODELS = "qs_xc7_cells.v"
#: The header naming the design's output streams for the harness (`streams_header`).
STREAMS_HEADER = "qs_streams.h"
PROGRAM = f"{TOP}_sim"
KEY_FILE = "key.sha256"
#: Two-state simulation with every unknown (uninitialised registers, X constants) taken as 0, as
#: numeric_std's to_integer reads an undefined address as 0 in the VHDL simulation.
VERILATOR_FLAGS = ["--cc", "--exe", "--build", "-O3", "--x-assign", "0", "--x-initial", "0", "-Wno-fatal"]
#: The C++ of the model compiled with -O2 rather than Verilator's default -Os: faster per cycle.
MAKE_FLAGS = "OPT_FAST=-O2 OPT_SLOW=-O1"


def verilator_path() -> str | None:
    return shutil.which("verilator")


def require_verilator() -> str:
    path = verilator_path()
    if path is None:
        raise SpartanError(
            "Verilator is not installed (Debian: apt-get install verilator; scripts/setup.sh installs it), "
            "or simulate with --simulator ghdl"
        )
    return path


def tool_version(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True).stdout.strip()


def streams_header(streams: int) -> str:
    """QS_STREAMS(X) for the harness: X(port) for each output stream of the top level, in order."""
    return "#define QS_STREAMS(X) " + " ".join(f"X({p})" for p in stream_ports(streams)) + "\n"


def program_key(build_dir: Path, streams: int) -> str:
    """A digest of everything the compiled program is made from."""
    digest = hashlib.sha256()
    templates = files("qonnx_spartan.templates")
    parts = [
        *(path.read_bytes() for path in design_sources(build_dir)),
        (templates / HARNESS).read_bytes(),
        streams_header(streams).encode(),
        (templates / CELL_MODELS).read_bytes(),
        " ".join([*VERILATOR_FLAGS, MAKE_FLAGS]).encode(),
        tool_version([require_verilator(), "--version"]).encode(),
        tool_version([require_ghdl(), "--version"]).encode(),
        Path(__file__).read_bytes(),
        inspect.getsource(corrected_netlist).encode(),
    ]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def compiled_program(build_dir: Path, streams: int, status: Callable[[str], None] | None = None) -> Path:
    """The build's simulator program for a top level with `streams` output streams, compiled now if the
    build has none for its current HDL."""
    verilator = require_verilator()
    folder = build_dir / "sim" / "verilator"
    program, key_file = folder / PROGRAM, folder / KEY_FILE
    key = program_key(build_dir, streams)
    if program.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        return program
    if status:
        status("compiling the design with Verilator (once per build)")
    templates = files("qonnx_spartan.templates")
    with tempfile.TemporaryDirectory(prefix="qs_verilator_") as tmp:
        work = Path(tmp)
        (work / "design.v").write_text(ghdl_verilog(build_dir, work))
        for name in (HARNESS, CELL_MODELS):
            (work / name).write_bytes((templates / name).read_bytes())
        (work / STREAMS_HEADER).write_text(streams_header(streams))
        cmd = [
            verilator,
            *VERILATOR_FLAGS,
            "-MAKEFLAGS",
            MAKE_FLAGS,
            "-j",
            str(os.cpu_count() or 1),
            "--top-module",
            TOP,
            "-Mdir",
            "obj",
            "-o",
            PROGRAM,
            "design.v",
            CELL_MODELS,
            HARNESS,
        ]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            errors = [line for line in (proc.stderr + proc.stdout).splitlines() if "rror" in line]
            raise RuntimeError("Verilator failed: " + " | ".join(errors[:8]))
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(program, lambda tmp_path: shutil.copy2(work / "obj" / PROGRAM, tmp_path))
    write_atomically(key_file, lambda tmp_path: tmp_path.write_text(key + "\n"))
    return program


def simulate(
    build_dir: Path,
    vectors: np.ndarray,
    io: HostIO,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    status: Callable[[str], None] | None = None,
) -> SimResult:
    """Stream every row of `vectors` through the compiled design; return its outputs and cycle counts.

    The vectors are split over `jobs` processes of the program (one per core by default).
    `progress(done, total)` is called every few seconds while they run, `status(message)` before a compile."""
    estimate = build_dir / "report" / "estimate.json"
    if not estimate.is_file():
        raise SpartanError(f"{build_dir}: not a built design (no report/estimate.json)")
    if io.input.dtype.bits > 64:
        raise SpartanError(f"the compiled simulator takes inputs of at most 64 bits, not {io.input.dtype.bits}")
    program = compiled_program(build_dir, len(io.outputs), status)
    limit = max_cycles(json.loads(estimate.read_text())["cycles"])
    counts = [str(io.input.count), str(limit), *(str(o.count) for o in io.outputs)]
    vectors = np.asarray(vectors, dtype=np.int64).reshape(len(vectors), -1)
    # each element as the unsigned value of its two's complement bits, as the harness reads them
    unsigned = vectors & ((1 << io.input.dtype.bits) - 1)
    lines = [" ".join(map(str, row)) for row in unsigned]

    def command(in_file: Path, out_file: Path) -> list[str]:
        return [str(program.resolve()), str(in_file), str(out_file), *counts]

    with tempfile.TemporaryDirectory(prefix="qs_verilator_run_") as tmp:
        rows = run_jobs(lines, command, Path(tmp), "Verilator", jobs, progress)
    if any(len(r) != io.output_count + 1 for r in rows):
        raise RuntimeError(f"Verilator simulation returned result lines without {io.output_count} outputs")
    # per output element its stream's width and signedness, to sign-extend the words
    bits = np.concatenate([np.full(o.count, o.dtype.bits) for o in io.outputs]).astype(object)
    signed = np.concatenate([np.full(o.count, o.dtype.signed) for o in io.outputs])
    words = np.array([[int(word, 16) for word in r[1:]] for r in rows], dtype=object)
    words = np.where(signed & (words >= 1 << (bits - 1)), words - (1 << bits), words)
    return SimResult(outputs=words.astype(np.int64), cycles=np.array([int(r[0]) for r in rows], dtype=np.int64))
