"""Regenerate docs/results.md: the main job for uniform 8, 6 and 4 bits and a mixed plan.

    python examples/results.py [--window 6]

Each configuration is trained (float, then QAT), built for the XC7S15, simulated over the whole test set
(compiled by Verilator, or in GHDL where it is not installed), and synthesised; the table collects their
summaries (out/results/<name>/summary.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import main_job  # noqa: E402

CONFIGS = {
    "8 bits": ["--bits", "8"],
    "6 bits": ["--bits", "6"],
    "4 bits": ["--bits", "4"],
    "mixed (plans/mixed.json)": ["--bits", "8", "--plan", str(REPO / "examples" / "plans" / "mixed.json")],
    # the second example (issue #16)
    "pre-norm encoder: LayerNorm, GELU, Conv1d embedding": [
        "--bits", "8", "--norm", "layer", "--act", "gelu", "--embed", "conv",
    ],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", default="6")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "results")
    args = ap.parse_args(argv)
    summaries = {}
    for name, extra in CONFIGS.items():
        out = args.out / name.split()[0]
        main_job.main(["--window", args.window, "--out", str(out), *extra])
        summaries[name] = json.loads((out / "summary.json").read_text())
    (REPO / "docs" / "results.md").write_text(render(summaries, args.window))
    print(f"wrote {REPO / 'docs' / 'results.md'}")
    return 0


def render(summaries: dict, window: str) -> str:
    first = next(iter(summaries.values()))
    rmse0 = first["rmse_gw"]
    lines = [
        "# Results: the forecasting Transformer on the XC7S15",
        "",
        f"elecdemand (fpp2, half-hourly electricity demand of Victoria, 2014), one-step-ahead forecast from a "
        f"window of {window} steps; d_model 16, one head, FFN 64, power-of-two quantiser scales; chronological "
        "70/15/15 split, normalisation fitted on the training part. RMSE in GW on the whole test set.",
        "Regenerate with `python examples/results.py` (after `source scripts/setup.sh`); each row is one run of "
        "the main job (`examples/main_job.py`).",
        "",
        f"Baselines: persistence {rmse0['persistence']:.4f} GW, float model {rmse0['float']:.4f} GW.",
        "",
        "| configuration | QAT Brevitas | integer reference | hardware | hardware vs QAT | bit-exact vectors "
        "| LUT | LUTRAM | FF | BRAM18 | DSP | cycles | latency at 100 MHz |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        r = s["rmse_gw"]
        qat = next(v for k, v in r.items() if k.startswith("QAT"))
        t = s["synthesis"]
        lines.append(
            f"| {name} | {qat:.4f} | {r['integer reference']:.4f} | {r['hardware']:.4f} | "
            f"{100 * (r['hardware'] / qat - 1):+.2f} % | {s['vectors'] if s['bit_exact'] else 'NO'} | "
            f"{t['LUT']} | {t['LUTRAM']} | {t['FF']} | {t['BRAM18']} | {t['DSP']} | {s['cycles']} | "
            f"{s['cycles'] / 100:.1f} us |"
        )
    lines += [
        "",
        "Resources are from synthesis (GHDL synth + yosys synth_xilinx for xc7) of the whole design; the XC7S15 "
        "has 8,000 LUT (2,400 usable as LUTRAM), 16,000 FF, 20 BRAM18, 20 DSP. MAC lanes are chosen by the "
        "build to fill the budget: when the DSPs are spent, further lanes share a DSP two at a time or multiply "
        "in LUTs (docs/latency.md), so the designs fill most of the XC7S15's LUTs for fewer cycles. Each layer "
        "starts as early as its data allow, so layers work at once (docs/architecture.md, the schedule). "
        "Estimates and their errors are in each run's report/estimate.json.",
        "",
        "The 6-bit and mixed models were trained on this machine (training is not the same bit for bit across "
        "CPUs); the 8-bit row is the embedded model. The last row is the second example (issue #16): a pre-norm "
        "encoder layer with three LayerNorms (IntLayerNorm), a GELU FFN (IntTable) and a padded Conv1d token "
        "embedding (IntConv1d). Its three LayerNorms take 9 of the 20 DSPs (3 each: one multiplier for d·d and "
        "d·r, on two DSPs as the reciprocal r has 26 bits, and z·G), so most of its MAC lanes are paired or "
        "multiplied in LUTs (docs/latency.md).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
