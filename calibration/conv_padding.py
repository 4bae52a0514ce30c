"""The LUTs of a padded Conv1d's read window, from the conv designs of sweep.py.

    python calibration/conv_padding.py [--rows calibration/yosys_rows.json]

An IntConv1d is a linear layer (coefficient group "linear", kept as fitted on the calibration models) plus
the window that masks reads outside its input: two comparisons of A's address and the subtraction of the
window's start, which grow with the address's bits.  No calibration model pads, so the fit cannot weigh
them; this is the mean of what the padded designs' layers take beyond the linear estimate (PAD_LUTS in
qonnx_spartan/ops/mac/int_conv1d.py), and its spread: over 5-9 address bits it did not grow with them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "calibration"), str(REPO / "tests")]

from sweep import OP_DESIGNS, op_configurations  # noqa: E402

from qonnx_spartan.coefficients import Coefficients  # noqa: E402
from qonnx_spartan.design import Design  # noqa: E402
from qonnx_spartan.ops.mac import int_conv1d  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, default=REPO / "calibration" / "yosys_rows.json")
    args = ap.parse_args(argv)
    rows = {(r["design"], r["layer"]): r for r in json.loads(args.rows.read_text())}
    coefficients = Coefficients.default()
    pairs = []
    for name, kind, params, _, _ in op_configurations():
        row = rows.get((name, "conv"))
        if kind != "conv" or not params["pad"] or row is None:
            continue
        bits = Design(OP_DESIGNS["conv"].make(**params)).layers[0].op.x_abits()
        fitted = sum(coefficients.apply(g, f)["LUT"] for g, f in row["features"].items())
        linear = row["exact"]["LUT"] - int_conv1d.PAD_LUTS + fitted  # the row's exact LUTs hold the window's
        pairs.append((bits, row["measured"]["LUT"] - linear))
        print(f"{name:44s} {bits} address bits, {pairs[-1][1]:3d} LUTs beyond the linear estimate")
    beyond = [r for _, r in pairs]
    mean = sum(beyond) / len(beyond)
    print(f"{mean:.1f} LUTs (from {min(beyond)} to {max(beyond)}) over {len(pairs)} padded designs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
