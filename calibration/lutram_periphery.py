"""Measure a distributed (LUTRAM) buffer: its LUTRAM and the logic around it (read mux, write decoder).

    python calibration/lutram_periphery.py [-o qonnx_spartan/data/lutram_periphery.json]

A buffer deeper than one RAM64M is built from slices whose read data yosys multiplexes and whose write
enables it decodes; how many LUTs that takes depends on the slice count and the width in ways no single
formula follows (a 384 x 8 buffer takes 38, a 512 x 8 one 32).  The buffer is an entity of its own,
synthesised in its own module, so every depth (in steps of 32 words) and width is synthesised once here,
from templates/qs_ram.vhd as the designs instantiate it, and the estimator reads the table: the LUTRAM
too, since yosys's choice between RAM32M and RAM64M follows a cost model of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from qonnx_spartan.ghdl import GHDL_FLAGS, require_ghdl  # noqa: E402
from qonnx_spartan.synth import cell_resources, yosys_command  # noqa: E402

DEPTHS = range(32, 2048 + 1, 32)
WIDTHS = tuple(range(1, 33))
BATCH = 96  # shapes per yosys run (a few hundred exhaust its memory)


def wrapper(shapes: list[tuple[int, int]]) -> str:
    """A VHDL entity with one qs_ram per (depth, width), each on ports of its own."""
    ports, body = ["clk : in std_logic"], []
    for i, (depth, width) in enumerate(shapes):
        abits = max((depth - 1).bit_length(), 1)
        ports += [
            f"we{i} : in std_logic",
            f"wa{i}, ra{i} : in unsigned({abits - 1} downto 0)",
            f"wd{i} : in std_logic_vector({width - 1} downto 0)",
            f"rd{i} : out std_logic_vector({width - 1} downto 0)",
        ]
        body.append(
            f"  u{i} : entity work.qs_ram generic map (WIDTH => {width}, DEPTH => {depth}, ABITS => {abits})\n"
            f"    port map (clk => clk, we => we{i}, waddr => wa{i}, wdata => wd{i}, raddr => ra{i}, rdata => rd{i});"
        )
    port_list = ";\n    ".join(ports)
    return (
        "library ieee;\nuse ieee.std_logic_1164.all;\nuse ieee.numeric_std.all;\n"
        f"entity rams is\n  port ({port_list});\nend entity;\n"
        "architecture rtl of rams is\nbegin\n" + "\n".join(body) + "\nend architecture;\n"
    )


def measure(shapes: list[tuple[int, int]]) -> dict[str, list[int]]:
    """{"depth x width": [LUTRAM, logic LUTs]} of each buffer shape."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "rams.vhd").write_text(wrapper(shapes))
        ghdl = [require_ghdl(), "--synth", *GHDL_FLAGS, "--out=verilog", str(REPO / "templates" / "qs_ram.vhd")]
        proc = subprocess.run([*ghdl, "rams.vhd", "-e", "rams"], cwd=work, capture_output=True, text=True, check=True)
        (work / "rams.v").write_text(proc.stdout)
        script = [
            "read_verilog rams.v",
            'setattr -set ram_style "distributed" */m:*',
            "synth_xilinx -family xc7 -top rams -noiopad",
            "tee -q -o stat.json stat -json",
        ]
        (work / "s.ys").write_text("\n".join(script) + "\n")
        subprocess.run([*yosys_command(), "-q", "s.ys"], cwd=work, check=True, capture_output=True)
        modules = json.loads((work / "stat.json").read_text())["modules"]
    table = {}
    for name, module in modules.items():
        match = re.match(r"\\?qs_ram_(\d+)_(\d+)_\d+", name)
        if match:
            counts = cell_resources(module["num_cells_by_type"])
            table[f"{match.group(2)}x{match.group(1)}"] = [counts["LUTRAM"], counts["LUT"] - counts["LUTRAM"]]
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "qonnx_spartan" / "data" / "lutram_periphery.json")
    args = ap.parse_args(argv)
    shapes = [(d, w) for d in DEPTHS for w in WIDTHS]
    batches = [shapes[i : i + BATCH] for i in range(0, len(shapes), BATCH)]
    table = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for part in pool.map(measure, batches):
            table.update(part)
    document = {"tool": "yosys synth_xilinx -family xc7", "columns": ["lutram", "logic"], "buffers": table}
    args.output.write_text(json.dumps(document, indent=0) + "\n")
    print(f"{len(table)} buffer shapes -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
