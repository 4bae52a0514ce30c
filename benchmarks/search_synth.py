"""A searched plan, built, simulated and synthesised: does it fit where the uniform model does not?

    python benchmarks/search_synth.py [--device xc7s6] [--out build/search_synth]

The embedded forecaster (8 bits) needs 14 DSPs with one lane; on a device with fewer (the XC7S6 has 10) it
does not fit.  The search (widths 4, 6, 8; calibration = the embedded test windows, reference = the 8-bit
integer reference's outputs) writes a plan; the plan is built, simulated in GHDL on every test window
(bit-exact against its own integer reference) and synthesised with yosys, and the table compares its
resources with the device and its outputs with the 8-bit reference in output LSBs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from qonnx_spartan import embedded
from qonnx_spartan.budget import Budget
from qonnx_spartan.flow import BuildConfig, build, estimate_only
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.base import RESOURCES
from qonnx_spartan.reference import run_reference
from qonnx_spartan.search import search, write_outputs
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.synth import synthesise
from qonnx_spartan.transforms import LowerToIntegerOps, Tidy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="xc7s6")
    ap.add_argument("--out", type=Path, default=Path("build/search_synth"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(device=args.device)
    x = np.load(embedded.inputs_path())
    lowered = load_model(embedded.model_path()).transform(Tidy()).transform(LowerToIntegerOps())
    io = HostIO.load(lowered)
    reference = run_reference(lowered, io.batch(x, "inputs"))
    y = io.output.dequantize(reference)

    uniform = estimate_only(BuildConfig(model=embedded.model_path(), output_dir=args.out, budget=budget, lanes=1))
    print(f"uniform 8 bits on {args.device}: {uniform['total']}, over: {uniform['overflows']}")
    result = search(embedded.model_path(), budget, x, y, (4, 6, 8))
    plan_path = write_outputs(result, args.out / "plan.json")[0]
    print(f"search: {result.seconds:.1f} s -> {plan_path}")

    design = args.out / "design"
    build(BuildConfig(model=embedded.model_path(), output_dir=design, budget=budget, plan=plan_path, lanes=1))
    sim = simulate_build(design, x)
    syn = synthesise(design)
    estimate = json.loads((design / "report" / "estimate.json").read_text())["total"]
    limits = budget.limits()
    lsb = float(io.output.scale)
    error = sim.io.output.dequantize(sim.hardware).reshape(len(x), -1) - y.reshape(len(x), -1)
    print(f"| resource | {args.device} | estimate | synthesis |")
    print("|---|---|---|---|")
    for r in RESOURCES:
        print(f"| {r} | {limits[r]} | {estimate[r]} | {syn['total'][r]} |")
    fits = all(syn["total"][r] <= limits[r] for r in RESOURCES)
    print(
        f"\nsynthesised design fits {args.device}: {fits}; GHDL bit-exact on {sim.vectors} windows: "
        f"{sim.bit_exact}; against the 8-bit reference: RMS {np.sqrt(np.mean(error**2)) / lsb:.2f} output LSBs, "
        f"largest {np.abs(error).max() / lsb:.0f}; {sim.cycles_per_inference} cycles"
    )
    return 0 if fits and sim.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
