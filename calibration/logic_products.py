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
from qonnx_spartan.synth import (  # noqa: E402
    LOGIC_PRODUCT_MODULES,
    cell_resources,
    synth_xilinx_commands,
    yosys_command,
)

MAX_BITS = 8
MAX_MULTIPLIER_BITS = 18


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


def forced_forms() -> list[tuple[int, bool, int, bool]]:
    """Every product that would take a DSP48E1, which the MAC can build in logic instead (logic_lanes,
    templates/qs_mul_logic.vhd).  That entity takes both operands signed, an unsigned one already extended
    by its zero bit (the hierarchy is kept, so synthesis cannot know that bit is 0): the forms are signed
    widths up to MAX_BITS + 1, times weights of as many bits or an elementwise op's rescale multiplier (up to
    MAX_MULTIPLIER_BITS, the DSP48E1's 18-bit port)."""
    return [
        (xw, True, bw, True)
        for xw in range(2, MAX_BITS + 2)
        for bw in range(2, MAX_MULTIPLIER_BITS + 1)
        if multiplier_dsps(xw, bw)
    ]


def module_name(form, forced: bool) -> str:
    """A forced form's module is named like the template's entity, so the synth runner's booth step takes it."""
    return f"{LOGIC_PRODUCT_MODULES.rstrip('*')}_{product_key(*form)}" if forced else product_key(*form)


def verilog_module(xb: int, xs: bool, bb: bool, bs: bool, forced: bool = False) -> str:
    xw, bw = xb + (not xs), bb + (not bs)
    x = "$signed(x)" if xs else "$signed({1'b0, x})"
    b = "$signed(b)" if bs else "$signed({1'b0, b})"
    return (
        f"module {module_name((xb, xs, bb, bs), forced)}(input clk, input [{xb - 1}:0] x, input [{bb - 1}:0] b,\n"
        f"  output reg signed [{xw + bw - 1}:0] p);\n"
        f"  always @(posedge clk) p <= {x} * {b};\nendmodule\n"
    )


def top_module(all_forms, forced: bool = False) -> str:
    """One instance of every product, each with ports of its own (the hierarchy is kept, so each is
    counted alone)."""
    ports, body = ["input clk"], []
    for i, (xb, xs, bb, bs) in enumerate(all_forms):
        pw = xb + (not xs) + bb + (not bs)
        ports += [f"input [{xb - 1}:0] x{i}", f"input [{bb - 1}:0] b{i}", f"output [{pw - 1}:0] p{i}"]
        body.append(f"  {module_name((xb, xs, bb, bs), forced)} u{i}(.clk(clk), .x(x{i}), .b(b{i}), .p(p{i}));")
    return "module products(" + ", ".join(ports) + ");\n" + "\n".join(body) + "\nendmodule\n"


def measure(selected: list[tuple[int, bool, int, bool]] | None = None, forced: bool = False) -> dict[str, int]:
    """LUTs of each product form (all of them by default; `forced`: the wide ones, built in logic), from one
    yosys run with the synth runner's commands."""
    selected = (forced_forms() if forced else forms()) if selected is None else selected
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modules = "".join(verilog_module(*form, forced=forced) for form in selected)
        (work / "products.v").write_text(modules + top_module(selected, forced))
        synth = synth_xilinx_commands("products", "-noiopad")
        script = ["read_verilog products.v", *synth, "tee -q -o stat.json stat -json"]
        (work / "s.ys").write_text("\n".join(script) + "\n")
        subprocess.run([*yosys_command(), "-q", "s.ys"], cwd=work, check=True, capture_output=True)
        modules = json.loads((work / "stat.json").read_text())["modules"]
    measured = {
        product_key(*form): cell_resources(modules["\\" + module_name(form, forced)]["num_cells_by_type"])
        for form in selected
    }
    # booth leaves a product with an operand under 4 signed bits alone, and the DSP mapping takes it: such
    # forms cannot be forced into logic, and are left out (the estimator then keeps them on DSPs)
    return {key: m["LUT"] for key, m in measured.items() if not m["DSP"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "qonnx_spartan" / "data" / "logic_products.json")
    args = ap.parse_args(argv)
    table, forced = measure(), measure(forced=True)
    document = {"tool": "yosys synth_xilinx -family xc7 (booth for forced_luts)", "luts": table, "forced_luts": forced}
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(table)} product forms, {len(forced)} forced into logic -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
