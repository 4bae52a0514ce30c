"""Fit what a MAC lane's product in LUTs costs beyond the first lane's, the rest of the linear group kept.

    python calibration/lane_products.py [--rows calibration/yosys_rows.json]
        [--coefficients qonnx_spartan/data/coefficients.json] [-o qonnx_spartan/data/coefficients.json]

The lanes of a layer multiply one A by P weights.  Counted as P products apart (`product_luts`, each as
calibration/logic_products.py measured it in isolation), the 10-16-lane layers of 2-5-bit designs came out
10-23 LUTs over: synthesis shares work between products of one operand.  The linear group's features
count the first lane's product (`product_luts`) and the others' (`lane_product_luts`) apart; a refit of
the whole group moves every linear layer's estimate (docs/estimator.md), so this fits the one coefficient
of the further lanes, by least squares on the linear layers' residuals with every other coefficient as
it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from qonnx_spartan.calibration import row_estimate  # noqa: E402
from qonnx_spartan.coefficients import Coefficients  # noqa: E402

FEATURE, FIRST = "lane_product_luts", "product_luts"


def fitted_coefficient(rows: list[dict], coefficients: Coefficients) -> tuple[float, int]:
    """The further lanes' coefficient, and how many layers have further lanes with products in LUTs."""
    weight = coefficients.groups["linear"]["LUT"][FIRST]
    numerator = denominator = 0.0
    layers = 0
    for row in rows:
        features = row["features"].get("linear")
        if not features or not features.get(FEATURE):
            continue
        # the layer as estimated with every lane's product at the first lane's coefficient
        as_first = {**features, FIRST: features[FIRST] + features[FEATURE], FEATURE: 0}
        estimated = row_estimate({**row, "features": {**row["features"], "linear": as_first}}, coefficients)["LUT"]
        residual, x = estimated - row["measured"]["LUT"], features[FEATURE]
        numerator, denominator, layers = numerator + residual * x, denominator + x * x, layers + 1
    return weight - numerator / denominator, layers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, default=REPO / "calibration" / "yosys_rows.json")
    ap.add_argument("--coefficients", type=Path, default=REPO / "qonnx_spartan" / "data" / "coefficients.json")
    ap.add_argument("-o", "--output", type=Path, help="where to write the coefficients (default: print only)")
    args = ap.parse_args(argv)
    coefficients = Coefficients.load(args.coefficients)
    value, layers = fitted_coefficient(json.loads(args.rows.read_text()), coefficients)
    first = coefficients.groups["linear"]["LUT"][FIRST]
    print(f"{FEATURE}: {value:.6f} LUT per LUT of a further lane's product ({FIRST} {first:.6f}), {layers} layers")
    if args.output:
        coefficients.groups["linear"]["LUT"][FEATURE] = round(value, 6)
        coefficients.save(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
