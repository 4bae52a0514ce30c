"""Latency against the paper and the device's multipliers: the paper's three configurations and the main job.

    python benchmarks/latency.py [--simulate NAME ...] [--synth NAME ...] [--builds DIR] [--json out.json]

The paper's configurations (window, d_model, bits) = (6, 64, 8), (12, 64, 6), (12, 32, 4) are the example
forecaster (examples/forecasting/model.py) with 7 input features like AirU, 1 head, power-of-two scales,
calibrated on random inputs (latency and resources do not depend on training), built for the XC7S15 with
`--memory-style budget` and lanes auto; the main job is the embedded default (window 6, d_model 16, 8 bits,
3 features), built as `qonnx-spartan build` builds it.  For each: multiply-accumulates, cycles from the
estimate (and from simulation of one vector for the names given to --simulate: GHDL's count), latency at
100 MHz, the paper's (arXiv 2410.03294, REFERENCE.md), speed-up, the DSP bound (MACs / 20 DSP48E1),
cycles per MAC, the estimate's resources and the one that binds (largest share of the device), and for the
names given to --synth the synthesised resources and the worst logic depth (qonnx_spartan/depth.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "examples" / "forecasting")]

from qonnx.custom_op.registry import getCustomOp  # noqa: E402

from qonnx_spartan import embedded  # noqa: E402
from qonnx_spartan.budget import Budget  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.model_file import load_model  # noqa: E402

FEATURES = 7  # AirU's inputs
#: name: (window, d_model, bits, the paper's latency in ms at 100 MHz); None: the main job
CONFIGS = {
    "w6 d64 b8": (6, 64, 8, 2.82),
    "w12 d64 b6": (12, 64, 6, 4.61),
    "w12 d32 b4": (12, 32, 4, 1.33),
    "main job w6 d16 b8": None,
}
CLOCK_MHZ = 100
SHOWN = ("LUT", "FF", "BRAM18", "DSP")


def export_forecaster(window: int, d_model: int, bits: int, path: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_models import calibrated
    from model import build_model

    torch.manual_seed(0)
    model = calibrated(build_model(window, FEATURES, d_model, 1, bits, po2=True), (window, FEATURES))
    export_qonnx(model, torch.randn(1, window, FEATURES), export_path=str(path), dynamo=False)
    return path


def macs(model) -> int:
    """Multiply-accumulates of the matrix products (the mean's additions are not multiplies)."""
    total = 0
    for node in model.graph.node:
        if node.op_type in ("IntLinear", "IntMatMul"):
            total += int(np.prod(getCustomOp(node).loops()))
    return total


def run(name: str, spec, out: Path, simulate: bool, synth: bool) -> dict:
    """Build (kept in `out`: a later run with new hardware must remove it), and simulate or synthesise."""
    budget = Budget(device="xc7s15")
    build_dir = out / "build"
    if not (build_dir / "report" / "estimate.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        if spec is None:
            model_path, style = embedded.model_path(), "auto"
        else:
            model_path, style = export_forecaster(*spec[:3], out / "model.onnx"), "budget"
        build(BuildConfig(model=model_path, output_dir=build_dir, budget=budget, memory_style=style, lanes="auto"))
    est = json.loads((build_dir / "report" / "estimate.json").read_text())
    model = load_model(build_dir / "model_int.onnx")
    row = {"name": name, "macs": macs(model), "cycles": est["cycles"], "estimate": est["total"]}
    row["paper_ms"] = spec[3] if spec else None
    limits = budget.limits()
    shares = {r: est["total"][r] / limits[r] for r in SHOWN if limits.get(r)}
    row["binds"] = max(shares, key=shares.get)
    row["binds_share"] = shares[row["binds"]]
    if simulate:
        from qonnx_spartan.simulation import simulate_build

        x = np.load(embedded.inputs_path())[:1] if spec is None else np.random.default_rng(0).normal(
            size=(1, spec[0], FEATURES)).astype(np.float32)
        sim = simulate_build(build_dir, x)
        row["cycles_sim"], row["bit_exact"], row["simulator"] = sim.cycles_per_inference, sim.bit_exact, sim.simulator
    if synth:
        from qonnx_spartan.synth import synthesise

        report = synthesise(build_dir)
        row["synthesis"] = report["total"]
        row["depth"] = report["depth"]
    return row


def worst(depth: dict) -> str:
    layer, path = max(depth.items(), key=lambda kv: kv[1]["ns"])
    return f"{path['lut_levels']} LUT + {path['carry4']} CARRY4 ({path['ns']} ns, {layer})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=Path, default=Path("build/benchmark_latency"), help="kept builds")
    ap.add_argument("--simulate", nargs="*", default=[], help="configurations to simulate (index or 'all')")
    ap.add_argument("--synth", nargs="*", default=[], help="configurations to synthesise (index or 'all')")
    ap.add_argument("--only", nargs="*", help="configurations to run (indices)")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    args = ap.parse_args(argv)

    def chosen(k: int, picks: list[str]) -> bool:
        return "all" in picks or str(k) in picks

    rows = []
    print(
        "| configuration | MACs | cycles (estimate) | cycles (simulated) | latency at 100 MHz | paper | speed-up "
        "| DSP bound | cycles / DSP bound | cycles per MAC | estimate LUT/FF/BRAM18/DSP | binds "
        "| synthesis LUT/FF/BRAM18/DSP | worst path |"
    )
    print("|---" * 14 + "|")
    for k, (name, spec) in enumerate(CONFIGS.items()):
        if args.only and str(k) not in args.only:
            continue
        row = run(name, spec, args.builds / f"{k:02d}", chosen(k, args.simulate), chosen(k, args.synth))
        rows.append(row)
        us = row["cycles"] / CLOCK_MHZ
        bound = -(-row["macs"] // 20)
        paper = f"{row['paper_ms']} ms" if row["paper_ms"] else "-"
        speedup = f"{row['paper_ms'] * 1000 / us:.2f}x" if row["paper_ms"] else "-"
        sim = (
            f"{row['cycles_sim']} ({row['simulator']}{', bit-exact' if row['bit_exact'] else ', NOT bit-exact'})"
            if "cycles_sim" in row
            else "-"
        )
        synth = "/".join(str(row["synthesis"][r]) for r in SHOWN) if "synthesis" in row else "-"
        print(
            f"| {name} | {row['macs']:,} | {row['cycles']:,} | {sim} | {us / 1000:.3f} ms | {paper} | {speedup} "
            f"| {bound:,} | {row['cycles'] / bound:.1f}x | {row['cycles'] / row['macs']:.3f} "
            f"| {'/'.join(str(row['estimate'][r]) for r in SHOWN)} | {row['binds']} {100 * row['binds_share']:.0f} % "
            f"| {synth} | {worst(row['depth']) if 'depth' in row else '-'} |",
            flush=True,
        )
    for row in rows:
        if "depth" in row:
            print(f"\nlogic depth per layer, {row['name']} (worst path: LUT levels, CARRY4; longest carry chain):")
            for layer, path in row["depth"].items():
                print(f"  {layer:40s} {path['lut_levels']} LUT  {path['carry4']} CARRY4  chain {path['longest_carry4']}"
                      f"  {path['ns']} ns")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
