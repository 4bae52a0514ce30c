"""Where a design's LUTs go: each LUT of the synthesised netlist attributed to the registers it feeds.

    python calibration/lut_attribution.py BUILD [BUILD ...] [--json out.json] [--top 12]

Each build is synthesised as `qonnx-spartan synth` does it, with yosys's netlist kept; every logic LUT
(LUTRAM is counted exactly and left out) is followed forward through LUTs, muxes and carry chains to the
flip-flops (or cells, or ports) it reaches first, and counted for the RTL signals of those flip-flops
(GHDL's nNNN_q registers by the signal names they alias), shared equally when it reaches several. The LUT
model of docs/estimator.md was examined this way ("Where in a layer the LUT error sits"): a layer's total
says how far off the estimate is, the signals say in which part of the template.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from qonnx_spartan.backend import TOP
from qonnx_spartan.synth import ghdl_verilog, module_of_instances, synth_script, yosys_command

LOGIC = re.compile(r"LUT\d|INV|MUXF\d|CARRY4")


def netlist(build_dir: Path, work: Path) -> tuple[dict, str]:
    """yosys's JSON netlist of the synthesised build, and GHDL's Verilog it was read from."""
    names = json.loads((build_dir / "report" / "build.json").read_text())["names"]
    verilog = ghdl_verilog(build_dir, work)
    (work / "design.v").write_text(verilog)
    script = [*synth_script(verilog, names, module_of_instances(verilog, TOP)), "write_json net.json"]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    proc = subprocess.run([*yosys_command(), "-q", "synth.ys"], cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{build_dir}: yosys failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return json.loads((work / "net.json").read_text()), verilog


def signal_aliases(verilog: str) -> dict[str, dict[str, str]]:
    """{module: {register wire: signal}}: GHDL names a register nNNN_q and the signal an alias of it."""
    aliases = {}
    for module, body in re.findall(r"^module (\S+)(.*?)^endmodule", verilog, re.S | re.M):
        pairs = re.findall(r"^\s+(\w+) = (n\d+_[qo]); // \(isignal\)", body, re.M)
        aliases[module] = {wire: name for name, wire in pairs}
    return aliases


def module_luts(module: dict, aliases: dict[str, str]) -> Counter:
    """LUTs of one module by the signals of the registers (or cells, or ports) they feed."""
    cells = module["cells"]
    bit_name: dict[int, str] = {}
    for name, info in module["netnames"].items():
        if not name.startswith("$"):
            for bit in info["bits"]:
                if isinstance(bit, int):
                    bit_name.setdefault(bit, aliases.get(name, name))
    readers = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port, "input") == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        readers[bit].append(name)

    def sinks(name: str, seen: set) -> set[str]:
        cell = cells[name]
        if cell["type"].startswith("FD"):
            return {bit_name.get(cell["connections"]["Q"][0], "?")}
        if not LOGIC.fullmatch(cell["type"]):
            return {cell["type"]}
        found = set()
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) != "output":
                continue
            for bit in (b for b in bits if isinstance(b, int)):
                if not readers.get(bit) and bit in bit_name:
                    found.add("port:" + bit_name[bit])
                for reader in readers.get(bit, []):
                    if reader not in seen:
                        seen.add(reader)
                        found |= sinks(reader, seen)
        return found

    counts: Counter = Counter()
    for name, cell in cells.items():
        if re.fullmatch(r"LUT\d|INV", cell["type"]):
            reached = sinks(name, {name}) or {"?"}
            for signal in reached:
                counts[signal] += 1 / len(reached)
    return counts


def attribute(build_dir: Path) -> dict[str, dict[str, float]]:
    """{module: {signal: LUTs}} of a built design."""
    with tempfile.TemporaryDirectory(prefix="qs_attribution_") as tmp:
        net, verilog = netlist(build_dir, Path(tmp))
    aliases = signal_aliases(verilog)
    result = {}
    for name, module in net["modules"].items():
        if module.get("cells") and not module.get("attributes", {}).get("blackbox"):
            counts = module_luts(module, aliases.get(name, {}))
            if counts:
                result[name] = {signal: round(v, 2) for signal, v in counts.most_common()}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write {build: {module: {signal: LUTs}}}")
    ap.add_argument("--top", type=int, default=12, help="signals printed per module")
    args = ap.parse_args(argv)
    everything = {}
    for build_dir in args.builds:
        everything[str(build_dir)] = modules = attribute(build_dir)
        for module, counts in modules.items():
            print(f"{build_dir} {module[:60]}: {sum(counts.values()):.0f} LUTs")
            for signal, luts in list(counts.items())[: args.top]:
                print(f"  {luts:7.1f}  {signal}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
