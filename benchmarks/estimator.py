"""The estimator against real synthesis and simulation, over MLPs and Transformers.

    python benchmarks/estimator.py [--only N] [--builds DIR] [--json out.json] [--shard K/N]

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

from brevitas_models import export_config  # noqa: E402

from qonnx_spartan import schedule  # noqa: E402
from qonnx_spartan.budget import Budget  # noqa: E402
from qonnx_spartan.estimate import estimate  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build, estimate_only  # noqa: E402
from qonnx_spartan.model_file import load_model  # noqa: E402
from qonnx_spartan.ops.base import RESOURCES  # noqa: E402
from qonnx_spartan.ops.mac import IntLinear  # noqa: E402
from qonnx_spartan.rom_cells import cell_luts  # noqa: E402
from qonnx_spartan.simulation import simulate_build  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

# (name, kind, parameters, memory style); Transformers: window, d_model, heads, bits, po2
MIXED = {"encoder.ffn1": {"weight_bits": 4}, "encoder.ffn2": {"weight_bits": 5}, "encoder.q_proj": {"weight_bits": 6}}
MIXED_ACT = {
    "encoder.ffn_relu": {"act_bits": 5},
    "encoder.softmax_quant": {"act_bits": 6},
    "embed.proj": {"weight_bits": 7},
}
CONFIGS = [
    ("mlp 4-8-3 b2", "mlp", dict(sizes=[4, 8, 3], bits=2), "distributed", 1),
    ("mlp 4-8-3 b8", "mlp", dict(sizes=[4, 8, 3], bits=8), "block", 1),
    ("mlp 8-32-16-1 b6", "mlp", dict(sizes=[8, 32, 16, 1], bits=6), "distributed", 1),
    ("mlp 8-32-16-1 b4 po2", "mlp", dict(sizes=[8, 32, 16, 1], bits=4, po2=True), "block", 1),
    ("mlp 16-64-64-4 b8 lanes", "mlp", dict(sizes=[16, 64, 64, 4], bits=8), "auto", "auto"),
    ("mlp 16-64-64-4 b5 po2", "mlp", dict(sizes=[16, 64, 64, 4], bits=5, po2=True), "distributed", 1),
    ("mlp 32-128-10 b3", "mlp", dict(sizes=[32, 128, 10], bits=3), "block", 1),
    ("mlp 12-24-24-24-2 b7", "mlp", dict(sizes=[12, 24, 24, 24, 2], bits=7), "auto", 4),
    ("tf w6 d16 h1 b8 lanes", "tf", dict(window=6, d_model=16, heads=1, bits=8), "auto", "auto"),
    ("tf w6 d16 h2 b6", "tf", dict(window=6, d_model=16, heads=2, bits=6), "distributed", 1),
    ("tf w6 d16 h1 b4", "tf", dict(window=6, d_model=16, heads=1, bits=4), "block", 1),
    ("tf w12 d16 h1 b8", "tf", dict(window=12, d_model=16, heads=1, bits=8), "auto", 1),
    ("tf w12 d16 h4 b8", "tf", dict(window=12, d_model=16, heads=4, bits=8), "distributed", 1),
    ("tf w12 d32 h2 b6", "tf", dict(window=12, d_model=32, heads=2, bits=6), "auto", 1),
    ("tf w12 d32 h1 b4", "tf", dict(window=12, d_model=32, heads=1, bits=4), "block", 1),
    ("tf w24 d16 h1 b8", "tf", dict(window=24, d_model=16, heads=1, bits=8), "auto", 1),
    ("tf w24 d16 h2 b6", "tf", dict(window=24, d_model=16, heads=2, bits=6), "block", 2),
    ("tf w6 d32 h1 b8", "tf", dict(window=6, d_model=32, heads=1, bits=8), "distributed", 1),
    ("tf w4 d8 h2 b5", "tf", dict(window=4, d_model=8, heads=2, bits=5), "distributed", 1),
    ("tf w8 d16 h1 b7 float", "tf", dict(window=8, d_model=16, heads=1, bits=7, po2=False), "auto", 1),
    ("tf w12 d16 h2 b8 mixed", "tf", dict(window=12, d_model=16, heads=2, bits=8, plan=MIXED), "auto", 1),
    ("tf w6 d24 h2 b8 mixed acts", "tf", dict(window=6, d_model=24, heads=2, bits=8, plan=MIXED_ACT), "distributed", 2),
]


def run(name: str, kind: str, params: dict, style: str, lanes, out: Path) -> dict:
    """Build, synthesise and simulate one configuration in `out` (a kept synthesis and simulation are
    reused, so that new coefficients can be checked in seconds); estimate it afresh."""
    budget = Budget(device="xc7s15" if lanes == "auto" else "xc7s50")  # auto lanes fill the XC7S15
    measured = out / "measured.json"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, in_shape = export_config(kind, params, Path(tmp) / "model.onnx")
        cfg = BuildConfig(model=onnx_path, output_dir=out / "build", memory_style=style, budget=budget, lanes=lanes)
        if not measured.is_file():
            build(cfg)
            syn = synthesise(out / "build")
            sim = simulate_build(out / "build", np.random.default_rng(0).normal(size=(2, *in_shape)).astype(np.float32))
            facts = {"synthesis": syn["total"], "synth_s": syn["seconds"], "cycles_ghdl": sim.cycles_per_inference}
            measured.write_text(json.dumps({**facts, "bit_exact": sim.bit_exact}))
        started = time.perf_counter()
        estimate_only(cfg)
        flow_ms = 1e3 * (time.perf_counter() - started)
    model = load_model(out / "build" / "model_int.onnx")
    cell_luts.cache_clear()  # timed from cold: every ROM's cells counted afresh
    IntLinear.weight_memories.cache_clear()
    schedule.MEMO.clear()
    started = time.perf_counter()
    est = estimate(model, budget)
    estimate_ms = 1e3 * (time.perf_counter() - started)
    return {
        "name": name,
        "style": style,
        "lanes": lanes,
        "estimate": est["total"],
        "cycles_estimate": est["cycles"],
        "estimate_ms": estimate_ms,
        "flow_ms": flow_ms,
        **json.loads(measured.read_text()),
    }


def relative(est: int, syn: int) -> str:
    if est == syn:
        return "exact"
    return f"{100 * (est - syn) / syn:+.1f}%" if syn else f"+{est}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=int, help="the first N configurations")
    ap.add_argument("--builds", type=Path, default=Path("build/benchmark_estimator"), help="kept builds")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    ap.add_argument("--shard", help="K/N: build, synthesise and simulate every N-th configuration from the K-th only")
    args = ap.parse_args(argv)
    if args.shard:
        first, step = map(int, args.shard.split("/"))
        for k, (name, kind, params, style, lanes) in list(enumerate(CONFIGS[: args.only]))[first::step]:
            run(name, kind, params, style, lanes, args.builds / f"{k:02d}")
            print(f"{k + 1:3d} {name}", flush=True)
        return 0
    rows = []
    print("| configuration | memories | lanes | " + " | ".join(RESOURCES) + " | cycles | estimate ms | synth s |")
    print("|---|---|---|" + "---|" * len(RESOURCES) + "---|---|---|")
    for k, (name, kind, params, style, lanes) in enumerate(CONFIGS[: args.only]):
        row = run(name, kind, params, style, lanes, args.builds / f"{k:02d}")
        rows.append(row)
        cells = " | ".join(
            f"{row['estimate'][r]} / {row['synthesis'][r]} ({relative(row['estimate'][r], row['synthesis'][r])})"
            for r in RESOURCES
        )
        cycles = (
            "exact"
            if row["cycles_estimate"] == row["cycles_ghdl"]
            else f"{row['cycles_estimate']} / {row['cycles_ghdl']}"
        )
        cycles += f" ({row['cycles_ghdl']})" if cycles == "exact" else ""
        print(
            f"| {name} | {style} | {lanes} | {cells} | {cycles} | {row['estimate_ms']:.0f} ({row['flow_ms']:.0f}) "
            f"| {row['synth_s']:.1f} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    errors = {
        r: [abs(x["estimate"][r] - x["synthesis"][r]) / max(x["synthesis"][r], 1) for x in rows] for r in RESOURCES
    }
    print("\nwithin 3 %: " + ", ".join(f"{r} {sum(e <= 0.03 for e in v)} of {len(v)}" for r, v in errors.items()))
    print("worst relative error: " + ", ".join(f"{r} {100 * max(v):.1f}%" for r, v in errors.items()))
    print(
        f"cycles exact on {sum(x['cycles_estimate'] == x['cycles_ghdl'] for x in rows)} of {len(rows)}; "
        f"bit-exact on {sum(x['bit_exact'] for x in rows)}; estimating a built model takes at most "
        f"{max(x['estimate_ms'] for x in rows):.0f} ms, at least "
        f"{min(1e3 * x['synth_s'] / x['estimate_ms'] for x in rows):.0f}x "
        f"faster than its synthesis ({min(x['synth_s'] for x in rows):.1f}-{max(x['synth_s'] for x in rows):.1f} s); "
        f"from the QONNX file (tidy, lower, lanes) at most {max(x['flow_ms'] for x in rows):.0f} ms, at least "
        f"{min(1e3 * x['synth_s'] / x['flow_ms'] for x in rows):.0f}x faster"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
