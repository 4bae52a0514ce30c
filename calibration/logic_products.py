"""Measure the LUTs yosys maps a MAC's small product to, when the product stays out of the DSPs.

    python calibration/logic_products.py [-o qonnx_spartan/data/logic_products.json]

A product under 9 bits (signed widths, ops/base.py multiplier_dsps) is built from LUTs, and ABC's count
is far from proportional to the partial products (a 4 x 3 product takes fewer LUTs per partial product
than a 3 x 2 one).  The MAC registers both operands and the product, so its multiplier is synthesised
the same in isolation as in the engine: this script synthesises every such product form once, as the
template writes it (an unsigned operand extended by a zero bit), and records its LUTs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from qonnx_spartan.ops.base import multiplier_dsps  # noqa: E402
from qonnx_spartan.synth import cell_resources, yosys_command  # noqa: E402

MAX_BITS = 8


def product_key(x_bits: int, x_signed: bool, b_bits: int, b_signed: bool) -> str:
    return f"{'s' if x_signed else 'u'}{x_bits}x{'s' if b_signed else 'u'}{b_bits}"


def forms() -> list[tuple[int, bool, int, bool]]:
    """Every operand form whose product the MAC keeps in logic."""
    return [
        (xb, xs, bb, bs)
        for xb in range(1, MAX_BITS + 1)
        for xs in (False, True)
        for bb in range(1, MAX_BITS + 1)
        for bs in (False, True)
        if not multiplier_dsps(xb + (not xs), bb + (not bs))
    ]


def verilog_module(xb: int, xs: bool, bb: bool, bs: bool) -> str:
    xw, bw = xb + (not xs), bb + (not bs)
    x = "$signed(x)" if xs else "$signed({1'b0, x})"
    b = "$signed(b)" if bs else "$signed({1'b0, b})"
    return (
        f"module {product_key(xb, xs, bb, bs)}(input clk, input [{xb - 1}:0] x, input [{bb - 1}:0] b,\n"
        f"  output reg signed [{xw + bw - 1}:0] p);\n"
        f"  always @(posedge clk) p <= {x} * {b};\nendmodule\n"
    )


def top_module(all_forms) -> str:
    """One instance of every product, each with ports of its own (the hierarchy is kept, so each is
    counted alone)."""
    ports, body = ["input clk"], []
    for i, (xb, xs, bb, bs) in enumerate(all_forms):
        pw = xb + (not xs) + bb + (not bs)
        ports += [f"input [{xb - 1}:0] x{i}", f"input [{bb - 1}:0] b{i}", f"output [{pw - 1}:0] p{i}"]
        body.append(f"  {product_key(xb, xs, bb, bs)} u{i}(.clk(clk), .x(x{i}), .b(b{i}), .p(p{i}));")
    return "module products(" + ", ".join(ports) + ");\n" + "\n".join(body) + "\nendmodule\n"


def measure(selected: list[tuple[int, bool, int, bool]] | None = None) -> dict[str, int]:
    """LUTs of each product form (all of them by default), from one yosys run."""
    selected = forms() if selected is None else selected
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modules = "".join(verilog_module(*form) for form in selected)
        (work / "products.v").write_text(modules + top_module(selected))
        script = (
            "read_verilog products.v\nsynth_xilinx -family xc7 -top products -noiopad\ntee -q -o stat.json stat -json\n"
        )
        (work / "s.ys").write_text(script)
        subprocess.run([*yosys_command(), "-q", "s.ys"], cwd=work, check=True, capture_output=True)
        modules = json.loads((work / "stat.json").read_text())["modules"]
    return {
        product_key(*form): cell_resources(modules["\\" + product_key(*form)]["num_cells_by_type"])["LUT"]
        for form in selected
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "qonnx_spartan" / "data" / "logic_products.json")
    args = ap.parse_args(argv)
    table = measure()
    args.output.write_text(json.dumps({"tool": "yosys synth_xilinx -family xc7", "luts": table}, indent=1) + "\n")
    print(f"{len(table)} product forms -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
