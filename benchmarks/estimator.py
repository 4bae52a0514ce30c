"""The estimator against real synthesis and simulation, over MLPs and Transformers.

    python benchmarks/estimator.py [--only N] [--json out.json]

For each configuration: export a calibrated Brevitas model, build it, synthesise it (GHDL + yosys
synth_xilinx), simulate two vectors in GHDL; print each resource's estimate against synthesis with the
relative error, cycles against GHDL, and the time to estimate against the time to synthesise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "examples" / "forecasting")]

from brevitas_models import calibrated, export, make_mlp  # noqa: E402

from qonnx_spartan.budget import Budget  # noqa: E402
from qonnx_spartan.estimate import estimate  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.model_file import load_model  # noqa: E402
from qonnx_spartan.ops.base import RESOURCES  # noqa: E402
from qonnx_spartan.simulation import simulate_build  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

# (name, kind, parameters, memory style); Transformers: window, d_model, heads, bits, po2
CONFIGS = [
    ("mlp 4-8-3 b2", "mlp", dict(sizes=[4, 8, 3], bits=2), "distributed"),
    ("mlp 4-8-3 b8", "mlp", dict(sizes=[4, 8, 3], bits=8), "block"),
    ("mlp 8-32-16-1 b6", "mlp", dict(sizes=[8, 32, 16, 1], bits=6), "distributed"),
    ("mlp 8-32-16-1 b4 po2", "mlp", dict(sizes=[8, 32, 16, 1], bits=4, po2=True), "block"),
    ("mlp 16-64-64-4 b8", "mlp", dict(sizes=[16, 64, 64, 4], bits=8), "auto"),
    ("mlp 16-64-64-4 b5 po2", "mlp", dict(sizes=[16, 64, 64, 4], bits=5, po2=True), "distributed"),
    ("mlp 32-128-10 b3", "mlp", dict(sizes=[32, 128, 10], bits=3), "block"),
    ("mlp 12-24-24-24-2 b7", "mlp", dict(sizes=[12, 24, 24, 24, 2], bits=7), "auto"),
    ("tf w6 d16 h1 b8", "tf", dict(window=6, d_model=16, heads=1, bits=8), "auto"),
    ("tf w6 d16 h2 b6", "tf", dict(window=6, d_model=16, heads=2, bits=6), "distributed"),
    ("tf w6 d16 h1 b4", "tf", dict(window=6, d_model=16, heads=1, bits=4), "block"),
    ("tf w12 d16 h1 b8", "tf", dict(window=12, d_model=16, heads=1, bits=8), "auto"),
    ("tf w12 d16 h4 b8", "tf", dict(window=12, d_model=16, heads=4, bits=8), "distributed"),
    ("tf w12 d32 h2 b6", "tf", dict(window=12, d_model=32, heads=2, bits=6), "auto"),
    ("tf w12 d32 h1 b4", "tf", dict(window=12, d_model=32, heads=1, bits=4), "block"),
    ("tf w24 d16 h1 b8", "tf", dict(window=24, d_model=16, heads=1, bits=8), "auto"),
    ("tf w24 d16 h2 b6", "tf", dict(window=24, d_model=16, heads=2, bits=6), "block"),
    ("tf w6 d32 h1 b8", "tf", dict(window=6, d_model=32, heads=1, bits=8), "distributed"),
    ("tf w4 d8 h2 b5", "tf", dict(window=4, d_model=8, heads=2, bits=5), "distributed"),
    ("tf w8 d16 h1 b7 float", "tf", dict(window=8, d_model=16, heads=1, bits=7, po2=False), "auto"),
]


def export_config(kind: str, params: dict, path: Path) -> tuple[Path, tuple]:
    if kind == "mlp":
        sizes = params["sizes"]
        model = make_mlp(sizes, params["bits"], po2=params.get("po2", False), out_quant=True)
        return export(model, path, (1, sizes[0])), (sizes[0],)
    import torch
    from brevitas.export import export_qonnx
    from model import build_model

    torch.manual_seed(0)
    w = params["window"]
    model = calibrated(
        build_model(w, 3, params["d_model"], params["heads"], params["bits"], po2=params.get("po2", True)), (w, 3)
    )
    export_qonnx(model, torch.randn(1, w, 3), export_path=str(path), dynamo=False)
    return path, (w, 3)


def run(name: str, kind: str, params: dict, style: str, work: Path) -> dict:
    onnx_path, in_shape = export_config(kind, params, work / "model.onnx")
    out = work / "build"
    budget = Budget(device="xc7s50")  # room for every configuration; the estimate is what is compared
    lowered = build(BuildConfig(model=onnx_path, output_dir=out, memory_style=style, budget=budget, lanes=1))
    started = time.perf_counter()
    est = estimate(load_model(out / "model_int.onnx"), budget)
    estimate_ms = 1e3 * (time.perf_counter() - started)
    syn = synthesise(out)
    sim = simulate_build(out, np.random.default_rng(0).normal(size=(2, *in_shape)).astype(np.float32))
    return {
        "name": name,
        "estimate": est["total"],
        "synthesis": syn["total"],
        "cycles_estimate": est["cycles"],
        "cycles_ghdl": sim.cycles_per_inference,
        "bit_exact": sim.bit_exact,
        "estimate_ms": estimate_ms,
        "synth_s": syn["seconds"],
        "layers": len(lowered.graph.node),
    }


def relative(est: int, syn: int) -> str:
    if syn == 0:
        return "exact" if est == 0 else f"+{est}"
    return f"{100 * (est - syn) / syn:+.1f}%"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=int, help="the first N configurations")
    ap.add_argument("--json", type=Path, help="write the rows as JSON (calibration data)")
    args = ap.parse_args(argv)
    rows = []
    header = (
        f"{'configuration':24s}"
        + "".join(f" {r:>16s}" for r in RESOURCES)
        + f" {'cycles':>14s} {'est ms':>7s} {'syn s':>6s}"
    )
    print(header)
    for name, kind, params, style in CONFIGS[: args.only]:
        with tempfile.TemporaryDirectory() as tmp:
            row = run(name, kind, params, style, Path(tmp))
        rows.append(row)
        cells = "".join(
            f" {row['estimate'][r]:>5d}/{row['synthesis'][r]:<5d}"
            f"{relative(row['estimate'][r], row['synthesis'][r]):>6s}"
            for r in RESOURCES
        )
        cyc = (
            "exact"
            if row["cycles_estimate"] == row["cycles_ghdl"]
            else f"{row['cycles_estimate']}/{row['cycles_ghdl']}"
        )
        print(f"{name:24s}{cells} {cyc:>14s} {row['estimate_ms']:7.0f} {row['synth_s']:6.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    worst = {
        r: max(abs(x["estimate"][r] - x["synthesis"][r]) / max(x["synthesis"][r], 1) for x in rows) for r in RESOURCES
    }
    print("worst relative error: " + ", ".join(f"{r} {100 * v:.1f}%" for r, v in worst.items()))
    print(
        f"cycles exact on {sum(x['cycles_estimate'] == x['cycles_ghdl'] for x in rows)} of {len(rows)}; "
        f"estimate {np.mean([x['estimate_ms'] for x in rows]):.0f} ms vs synthesis "
        f"{np.mean([x['synth_s'] for x in rows]):.1f} s on average"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
