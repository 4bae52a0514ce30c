"""The main job: export a small quantised MLP from Brevitas, build it for the XC7S15, simulate it in GHDL
bit-exact against the integer reference, and print one table.  (The Transformer example replaces it.)"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from brevitas_models import brevitas_outputs, export, make_mlp  # noqa: E402

from qonnx_spartan.devices import DEVICES  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.simulation import simulate_build, write_outputs  # noqa: E402


def main() -> int:
    out = REPO / "out" / "mlp"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = make_mlp([8, 32, 16, 1], 6, po2=False, out_quant=True)
    onnx_path = export(model, out.parent / "mlp.onnx", (1, 8))
    build(BuildConfig(model=onnx_path, output_dir=out), progress=lambda s: print(f"  build: {s}", flush=True))
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    print("  simulate: 200 vectors in GHDL", flush=True)
    sim = simulate_build(out, x)
    write_outputs(sim, out, out / "y.npy")
    y_brevitas = brevitas_outputs(model, x).reshape(len(x), -1)
    y_hw = np.load(out / "y.npy").reshape(len(x), -1)
    estimate = json.loads((out / "report" / "estimate.json").read_text())
    device = DEVICES[estimate["device"]]
    print(f"\nqonnx-spartan main job: MLP 8-32-16-1 at 6 bits -> {out}")
    print(f"  GHDL vs integer reference : {'bit-exact' if sim.bit_exact else 'MISMATCH'} on {sim.vectors} vectors")
    print(f"  hardware vs Brevitas      : max |diff| {np.abs(y_hw - y_brevitas).max():.4g}")
    print(f"  {'resource':8s} {'estimate':>9s} {device.name:>9s}")
    for r, v in estimate["total"].items():
        print(f"  {r:8s} {v:9d} {device.capacities()[r]:9d}")
    print(f"  cycles per inference {sim.cycles_per_inference} ({sim.cycles_per_inference / 100:.2f} us at 100 MHz)")
    print(f"  done in {time.time() - t0:.0f} s")
    return 0 if sim.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
