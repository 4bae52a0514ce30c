"""GHDL and the compiled simulator (Verilator) side by side on the main job's test set.

    python benchmarks/simulation.py [--windows N] [--jobs J] [--json out.json]

Builds the main job's design (the embedded forecaster: window 6, d_model 16, 8 bits) for the XC7S15, then
streams the elecdemand test windows (all 2,622 by default) through it in GHDL and in Verilator, each split
over J processes (default: one per core).  Prints windows and cycles per second of each, wall and CPU (the
CPU seconds of the simulator processes, which a machine shared with other work does not inflate), their
ratio, Verilator's one-off compile time, and whether both gave identical outputs and cycle counts on every
window, equal to the integer reference.  docs/simulation.md records a run.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "forecasting"))

from data import make_dataset  # noqa: E402

from qonnx_spartan import embedded, ghdl, verilator  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.hostio import HostIO  # noqa: E402
from qonnx_spartan.reference import run_reference  # noqa: E402
from qonnx_spartan.sim_jobs import job_count  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(run):
    """run()'s result, its wall seconds and the CPU seconds of the processes it ran."""
    wall, cpu = time.perf_counter(), children_cpu()
    result = run()
    return result, time.perf_counter() - wall, children_cpu() - cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, help="simulate only the first N test windows (default: all)")
    ap.add_argument("--jobs", type=int, help="simulator processes (default: one per core)")
    ap.add_argument("--json", type=Path, help="write the measurements as JSON")
    args = ap.parse_args(argv)

    x = make_dataset(embedded.info()["config"]["window"]).test.x[: args.windows]
    with tempfile.TemporaryDirectory(prefix="qs_simbench_") as tmp:
        out = Path(tmp) / "build"
        model = build(BuildConfig(model=embedded.model_path(), output_dir=out))
        io = HostIO.load(model)
        vectors = io.batch(x, "test set")
        reference = run_reference(model, vectors)
        jobs = job_count(len(vectors), args.jobs)
        print(f"{len(vectors)} test windows through the main job's design, {jobs} processes per simulator")

        shutil.rmtree(out / "sim" / "verilator", ignore_errors=True)
        _, compile_wall, compile_cpu = timed(lambda: verilator.compiled_program(out, len(io.outputs)))
        print(f"verilator: compiled in {compile_wall:.1f} s ({compile_cpu:.1f} CPU s), kept for the next runs")
        runs = {}
        for name, simulate in (
            ("ghdl", lambda: ghdl.simulate(out, vectors, io.output_count, jobs=args.jobs)),
            ("verilator", lambda: verilator.simulate(out, vectors, io, jobs=args.jobs)),
        ):
            result, wall, cpu = timed(simulate)
            cycles = int(result.cycles.sum())
            runs[name] = {
                "result": result,
                "seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "windows_per_s": len(vectors) / wall,
                "cycles_per_s": cycles / wall,
                "windows_per_cpu_s": len(vectors) / cpu,
                "cycles_per_cpu_s": cycles / cpu,
            }
            print(f"{name}: {wall:.1f} s", flush=True)

    g, v = runs["ghdl"], runs["verilator"]
    identical = np.array_equal(g["result"].outputs, v["result"].outputs) and np.array_equal(
        g["result"].cycles, v["result"].cycles
    )
    exact = {name: bool(np.array_equal(r["result"].outputs, reference)) for name, r in runs.items()}
    print(f"\n{'':10s} {'seconds':>8s} {'windows/s':>10s} {'cycles/s':>10s} {'CPU s':>8s} {'windows/CPU s':>14s}")
    for name, r in runs.items():
        print(
            f"{name:10s} {r['seconds']:8.1f} {r['windows_per_s']:10.1f} {r['cycles_per_s']:10.3g} "
            f"{r['cpu_seconds']:8.1f} {r['windows_per_cpu_s']:14.1f}"
        )
    ratio, cpu_ratio = v["windows_per_s"] / g["windows_per_s"], v["windows_per_cpu_s"] / g["windows_per_cpu_s"]
    print(f"{'ratio':10s} {ratio:8.1f}x wall, {cpu_ratio:.1f}x CPU")
    print(
        f"outputs and cycles identical on all {len(vectors)} windows: {identical}; "
        f"equal to the integer reference: ghdl {exact['ghdl']}, verilator {exact['verilator']}"
    )
    if args.json:
        summary = {name: {k: val for k, val in r.items() if k != "result"} for name, r in runs.items()}
        summary.update(
            windows=len(vectors),
            cycles_per_window=int(v["result"].cycles[0]),
            compile_seconds=round(compile_wall, 1),
            compile_cpu_seconds=round(compile_cpu, 1),
            ratio=round(ratio, 1),
            cpu_ratio=round(cpu_ratio, 1),
            identical=identical,
            bit_exact=exact,
        )
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if identical and all(exact.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
