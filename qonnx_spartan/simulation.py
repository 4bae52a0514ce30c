"""`simulate`: float inputs in, the hardware over every vector (compiled by Verilator, or in GHDL), each
output integer checked against the reference."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qonnx_spartan import ghdl, verilator
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.reference import run_reference


SIMULATORS = ("verilator", "ghdl")


def default_simulator() -> str:
    """Verilator when installed (compiled once per build, then tens of times faster), else GHDL."""
    return "verilator" if verilator.verilator_path() else "ghdl"


@dataclass
class SimReport:
    vectors: int
    mismatches: int
    cycles_per_inference: int
    hardware: np.ndarray  # integer outputs of the hardware (vectors, elements of every output in turn)
    reference: np.ndarray  # integer outputs of the reference (io.split gives one array per output)
    io: HostIO  # the host side the inputs were quantised with, to dequantise the outputs
    simulator: str  # which one ran: "verilator" or "ghdl"

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0

    def to_json(self) -> dict:
        return {
            "vectors": self.vectors,
            "bit_exact": self.bit_exact,
            "mismatched_vectors": self.mismatches,
            "cycles_per_inference": self.cycles_per_inference,
            "simulator": self.simulator,
        }


def load_inputs(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SpartanError(f"{path}: input file not found") from None
    except (ValueError, OSError, EOFError) as e:
        raise SpartanError(f"{path}: not a NumPy .npy array ({e.__class__.__name__})") from None


def simulate_build(
    build_dir: Path,
    inputs: np.ndarray,
    source: str = "inputs",
    progress=None,
    simulator: str | None = None,
    status=None,
    output: Path | None = None,
) -> SimReport:
    """Run `inputs` (float, batch first) through the built design in `simulator` (default:
    `default_simulator()`) and check every output against the integer reference.  `progress(done, total)`
    reports vectors while they run, `status(message)` a compile; `output`, the file the outputs will be
    written to, is checked first."""
    simulator = simulator or default_simulator()
    if simulator not in SIMULATORS:
        raise SpartanError(f"unknown simulator '{simulator}': choose one of {', '.join(SIMULATORS)}")
    model_path = build_dir / "model_int.onnx"
    if not model_path.is_file():
        raise SpartanError(f"{build_dir}: not a built design (no model_int.onnx); run `qonnx-spartan build` first")
    model = load_model(model_path)
    io = HostIO.load(model)
    if output is not None:
        check_output_file(io, output)  # before the simulation, not after it
    vectors = io.batch(inputs, source)
    reference = run_reference(model, vectors)
    if simulator == "verilator":
        result = verilator.simulate(build_dir, vectors, io, progress=progress, status=status)
    else:
        result = ghdl.simulate(build_dir, vectors, io.output_count, progress=progress)
    mismatches = int(np.any(result.outputs != reference, axis=1).sum())
    cycles = sorted(set(result.cycles.tolist()))
    if len(cycles) != 1:
        raise RuntimeError(f"cycles per inference vary between vectors: {cycles}")
    return SimReport(len(vectors), mismatches, cycles[0], result.outputs, reference, io, simulator)


def check_output_file(io: HostIO, output: Path) -> None:
    """A .npy holds one array: a model with several outputs needs a .npz."""
    if len(io.outputs) > 1 and output.suffix != ".npz":
        raise SpartanError(
            f"{output}: the model has {len(io.outputs)} outputs; give --output a .npz file (one array per output)"
        )


def write_outputs(report: SimReport, build_dir: Path, output: Path | None) -> None:
    """The hardware's dequantised outputs to `output`: a .npy array for a model with one output, or a .npz
    holding `output_0`, `output_1`, ... in the order the model returns them (any number of outputs)."""
    io = report.io
    if output is not None:
        check_output_file(io, output)
        ys = io.dequantize(report.hardware)
        several = output.suffix == ".npz"
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp{'.npz' if several else '.npy'}")
        if several:
            np.savez(tmp, **{f"output_{k}": y for k, y in enumerate(ys)})
        else:
            np.save(tmp, ys[0])
        tmp.replace(output)
    (build_dir / "report").mkdir(exist_ok=True)
    (build_dir / "report" / "sim.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
