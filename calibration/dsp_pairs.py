"""Measure what two lanes sharing one DSP48E1 cost in LUTs and flip-flops (`dsp_pairs`, ops/mac/engine.py).

    python calibration/dsp_pairs.py [-o pairs.json]

Each design is one IntLinear with 2-6 lanes, accumulators in the fabric (acc_shift 2), built with 0, 1 and
every pair, and synthesised; the table gives the layer's LUTs and FFs against the estimate, which counts
a pair exactly (`MacOp.exact_resources`: the product's bits less one per pair, PAIR_STAGE_LUTS for the
operand stage's control, and that stage's flags and group tag as flip-flops; the operands themselves
become the DSPs' input registers).  The rest of the layer is the fitted estimate of the same layer
unpaired, so the differences between rows are what a pair adds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from qonnx.custom_op.registry import getCustomOp  # noqa: E402
from test_lanes import linear_node, single_linear  # noqa: E402

from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.intarith import IntType  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

# (lanes, x signed, K, N, weight bits)
DESIGNS = [(2, True, 8, 6, 8), (4, True, 16, 8, 8), (4, False, 16, 8, 8), (4, True, 12, 8, 6), (6, True, 12, 12, 7)]


def measure(lanes: int, signed: bool, k: int, n: int, w_bits: int, pairs: int, work: Path) -> dict:
    node, out_type = linear_node(
        np.random.default_rng(6), 2, k, n, IntType(signed, 8), w_bits, acc_shift=2, lanes=lanes, extreme=True
    )
    op = getCustomOp(node)
    op.set_nodeattr("multiplier", 1)
    op.set_nodeattr("dsp_pairs", pairs)
    assert op.dsp_pairs() == pairs
    single_linear(node, out_type).save(str(work / "lowered.onnx"))
    out = work / "build"
    build(BuildConfig(model=work / "lowered.onnx", output_dir=out, start_step="estimate", memory_style="distributed"))
    estimate = json.loads((out / "report" / "estimate.json").read_text())["layers"]["fc"]
    synthesis = synthesise(out)["layers"]["fc"]
    return {"estimate": estimate, "synthesis": synthesis}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    rows = []
    print("| lanes | A | K x N | weight bits | pairs | LUT estimate / synthesis | FF estimate / synthesis | DSP |")
    print("|---|---|---|---|---|---|---|---|")
    for lanes, signed, k, n, w_bits in DESIGNS:
        for pairs in sorted({0, 1, lanes // 2}):
            with tempfile.TemporaryDirectory(prefix="qs_pairs_") as tmp:
                row = measure(lanes, signed, k, n, w_bits, pairs, Path(tmp))
            est, syn = row["estimate"], row["synthesis"]
            print(
                f"| {lanes} | {'s8' if signed else 'u8'} | {k} x {n} | {w_bits} | {pairs} | {est['LUT']} / {syn['LUT']} "
                f"| {est['FF']} / {syn['FF']} | {est['DSP']} / {syn['DSP']} |",
                flush=True,
            )
            rows.append({"design": [lanes, signed, k, n, w_bits], "pairs": pairs, **row})
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
