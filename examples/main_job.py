"""The main job: the paper's forecasting Transformer on real data, from training to synthesised hardware.

Trains the example on elecdemand (float, then QAT; or reuses a model trained with the same settings),
builds it for the XC7S15 (`--device`), simulates the whole test set (compiled by Verilator when installed, else in GHDL)
while synthesising it with yosys (which runs on one core), and prints one table: test RMSE of persistence,
the float model, the QAT Brevitas model, the integer reference and the hardware; resources from the
estimate and from synthesis against the device; cycles and latency.

    python examples/main_job.py [--window 12] [--d-model 16] [--heads 1] [--bits 8] [--plan PLAN.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "forecasting"))

from data import FEATURES, make_dataset  # noqa: E402
from train import export, train_float_then_qat  # noqa: E402

from qonnx_spartan import embedded  # noqa: E402
from qonnx_spartan.budget import Budget  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.plan import load_plan  # noqa: E402
from qonnx_spartan.simulation import default_simulator, simulate_build, write_outputs  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

START = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f} s] {msg}", flush=True)


def rmse(pred_norm: np.ndarray, y_norm: np.ndarray, data) -> float:
    return float(np.sqrt(np.mean((data.denormalise(pred_norm) - data.denormalise(y_norm)) ** 2)))


def trained_model(args, data, out: Path) -> dict:
    """The QAT model in out/model.onnx and the float and QAT test RMSEs: the embedded default when the
    configuration is its own, else a model trained earlier into out/ with it, else a new one (float, then
    QAT from the float weights, with progress per epoch)."""
    config = {k: getattr(args, k) for k in ("window", "d_model", "heads", "bits", "po2", "seed")}
    config["plan"] = load_plan(args.plan).bit_widths() if args.plan else None
    variant = {k: getattr(args, k) for k in ("norm", "act", "embed")}
    if variant != {"norm": "batch", "act": "relu", "embed": "linear"}:  # the paper's model keeps its config
        config.update(variant)
    out.mkdir(parents=True, exist_ok=True)
    cached = out / "training.json"
    if not args.retrain and embedded.info()["config"] == config:
        say("using the embedded trained model (--retrain to train it again)")
        shutil.copy(embedded.model_path(), out / "model.onnx")
        rmse_gw = embedded.info()["test_rmse_gw"]
        return {"config": config, "float": rmse_gw["float"], "qat": rmse_gw["qat"]}
    if not args.retrain and cached.is_file() and json.loads(cached.read_text())["config"] == config:
        say(f"reusing the model trained in {out} (--retrain to train again)")
        return json.loads(cached.read_text())

    def log(p):
        if p["epoch"] % 5 == 0:
            say(f"  {'QAT' if p['quant'] else 'float'} epoch {p['epoch']:3d}: validation RMSE {p['val_rmse']:.4f}")

    say("training the float model, then QAT from its weights")
    _, float_metrics, qat_model, qat_metrics = train_float_then_qat(
        data,
        args.window,
        args.d_model,
        args.heads,
        args.bits,
        config["plan"],
        args.po2,
        args.epochs,
        args.seed,
        log,
        variant=variant,
    )
    export(qat_model, out / "model.onnx", args.window, len(FEATURES))
    record = {"config": config, "float": float_metrics["test_rmse"], "qat": qat_metrics["test_rmse"]}
    cached.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=6)
    ap.add_argument("--d-model", type=int, default=16)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--plan", type=Path, help="per-module bit widths, YAML or JSON {module: {weight_bits, act_bits}}")
    ap.add_argument(
        "--float-scales", dest="po2", action="store_false", help="float quantiser scales instead of power-of-two ones"
    )
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--norm", choices=("batch", "layer"), default="batch", help="BatchNorm post-norm, LayerNorm pre-norm"
    )
    ap.add_argument("--act", choices=("relu", "gelu"), default="relu", help="the FFN's activation")
    ap.add_argument("--embed", choices=("linear", "conv"), default="linear", help="token embedding")
    ap.add_argument("--device", default="xc7s15", help="the part the design is built for (default the XC7S15)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "main")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    out = args.out

    say(f"elecdemand, window {args.window}, d_model {args.d_model}, {args.heads} head(s), {args.bits} bits")
    data = make_dataset(args.window)
    record = trained_model(args, data, out)
    budget = Budget(device=args.device)  # the whole device

    say(f"building for the {args.device.upper()}")
    build(
        BuildConfig(model=out / "model.onnx", output_dir=out / "build", budget=budget),
        progress=lambda step: say(f"  build: {step}"),
    )
    estimate = json.loads((out / "build" / "report" / "estimate.json").read_text())
    n, simulator = len(data.test.x), default_simulator()
    with ThreadPoolExecutor(max_workers=1) as pool:
        say("synthesising (GHDL synth + yosys synth_xilinx) alongside the simulation")
        synthesis = pool.submit(synthesise, out / "build")
        say(f"simulating the whole test set in {simulator}: {n} windows x {estimate['cycles']} cycles")
        sim = simulate_build(
            out / "build",
            data.test.x,
            source="test set",
            progress=lambda done, total: say(f"  {simulator}: {done} of {total} windows"),
            simulator=simulator,
            status=lambda message: say(f"  {message}"),
        )
        write_outputs(sim, out / "build", out / "hardware_pred.npy")
        say("simulated; waiting for the synthesis")
        synth = synthesis.result()

    io = sim.io
    y = data.test.y
    rows = {
        "persistence": data.persistence_rmse("test"),
        "float": record["float"],
        f"QAT Brevitas ({args.bits} bits)": record["qat"],
        "integer reference": rmse(io.output.dequantize(sim.reference).ravel(), y, data),
        "hardware": rmse(io.output.dequantize(sim.hardware).ravel(), y, data),
    }
    device = budget.profile
    print(f"\nqonnx-spartan main job: forecasting Transformer on elecdemand -> {out}")
    print(f"{'test RMSE (GW)':32s}")
    for name, value in rows.items():
        print(f"  {name:30s} {value:.4f}")
    verdict = "bit-exact" if sim.bit_exact else f"{sim.mismatches} MISMATCHED vectors"
    print(f"  hardware ({simulator}) vs integer reference: {verdict} on all {sim.vectors} test windows")
    gap = rows["hardware"] / rows[f"QAT Brevitas ({args.bits} bits)"] - 1
    print(f"  hardware RMSE vs QAT Brevitas: {100 * gap:+.2f} %")
    print(f"\n  {'resource':8s} {'estimate':>9s} {'synthesis':>10s} {device.name + ' has':>11s}")
    for r, cap in device.capacities().items():
        print(f"  {r:8s} {estimate['total'][r]:9d} {synth['total'][r]:10d} {cap:11d}")
    cycles = sim.cycles_per_inference
    print(
        f"\n  cycles per inference {cycles} (estimate {estimate['cycles']}), "
        f"latency {cycles / budget.clock_mhz:.1f} us at {budget.clock_mhz:g} MHz"
    )
    summary = {
        "rmse_gw": rows,
        "bit_exact": sim.bit_exact,
        "simulator": simulator,
        "vectors": sim.vectors,
        "cycles": cycles,
        "estimate": estimate["total"],
        "synthesis": synth["total"],
        "device": device.name,
        "seconds": round(time.perf_counter() - START, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(f"done; summary in {out / 'summary.json'}")
    return 0 if sim.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
