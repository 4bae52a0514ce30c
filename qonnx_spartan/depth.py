"""Logic depth of a synthesised netlist: the longest register-to-register path of each layer.

There is no open place and route for the XC7S15, so the clock a design reaches is judged from its
netlist: a walk over yosys's `write_json` of the flattened synth_xilinx netlist finds, for every path
between sequential cells (flip-flops, block RAM, DSP48E1 with a register on the way), the LUT levels,
CARRY4 cells, MUXF7/F8 and LUTRAM reads on it, and ranks paths by a rough delay: each element costs about
what 7-series -1 speed grade data (DS181, UG474) give for the element and a typical net.  That delay is a
guide for comparing designs, not a timing sign-off (Vivado's report_timing in vivado/build.tcl is).

A path belongs to the layer of the cell it ends at (its entity, ROMs and output buffer, as
synth.hierarchy_report counts them; "top" for the control and the input buffer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Rough delays in ns of an element plus a typical net (7-series -1: DS181 switching characteristics).
LUT_NS = 0.65
MUXF_NS = 0.35
CARRY_ENTRY_NS = 0.55  # S or DI into a CARRY4, out at O/CO
CARRY_NS = 0.12  # CI to CO of the next CARRY4 in a chain
LUTRAM_NS = 1.1  # distributed RAM read, address to data
DSP_COMB_NS = 3.9  # a DSP48E1 with no register on the way through (multiply and add)
CLOCK_TO_Q_NS = {"ff": 0.45, "bram": 2.1, "bram_reg": 0.9, "dsp": 0.6}
#: Setup of a path's end: a flip-flop's, a DSP48E1 input through its multiplier into the M or P register.
SETUP_NS = {"ff": 0.1, "bram": 0.6, "dsp_reg": 0.4, "dsp_mult": 2.9}

LUTRAM_CELLS = {
    *("RAM32X1S", "RAM32X1D", "RAM32M", "RAM64X1S", "RAM64X1D", "RAM64M", "RAM128X1S", "RAM128X1D", "RAM256X1S"),
    *("SRL16E", "SRLC32E"),
}
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE"}
RAM_CELLS = {"RAMB18E1", "RAMB36E1"}


@dataclass(frozen=True)
class Path:
    """The elements on one register-to-register path, and its rough delay."""

    ns: float = 0.0
    lut_levels: int = 0
    carry4: int = 0
    muxf: int = 0
    lutram: int = 0
    dsp: int = 0  # DSP48E1s passed through without a register

    def plus(self, ns: float, **counts) -> "Path":
        fields = asdict(self)
        fields["ns"] = round(fields["ns"] + ns, 3)
        for key, value in counts.items():
            fields[key] += value
        return Path(**fields)


def _param(cell: dict, name: str) -> int:
    value = cell.get("parameters", {}).get(name, 0)
    return int(value, 2) if isinstance(value, str) else int(value)


def _dsp_registered(cell: dict) -> bool:
    return any(_param(cell, p) for p in ("AREG", "BREG", "MREG", "PREG"))


def _sequential(cell: dict) -> bool:
    kind = cell["type"]
    return kind in FF_CELLS or kind in RAM_CELLS or (kind == "DSP48E1" and _dsp_registered(cell))


def _written(cell: dict, port: str) -> bool:
    """Whether a port of a LUTRAM or shift register is written at the clock edge (data, write enable): a
    path ends there; its read addresses reach the data out without a clock."""
    data = port.startswith("D") and not port.startswith("DPRA")
    return cell["type"] in LUTRAM_CELLS and (data or port in ("WE", "CE"))


def _start_ns(cell: dict) -> float:
    kind = cell["type"]
    if kind in RAM_CELLS:
        return CLOCK_TO_Q_NS["bram_reg" if _param(cell, "DOA_REG") or _param(cell, "DOB_REG") else "bram"]
    return CLOCK_TO_Q_NS["dsp" if kind == "DSP48E1" else "ff"]


def _setup_ns(cell: dict, port: str) -> float:
    kind = cell["type"]
    if kind in RAM_CELLS:
        return SETUP_NS["bram"]
    if kind == "DSP48E1":
        if port.startswith("A") and not port.startswith("ACIN") and _param(cell, "AREG"):
            return SETUP_NS["dsp_reg"]
        if port.startswith("B") and not port.startswith("BCIN") and _param(cell, "BREG"):
            return SETUP_NS["dsp_reg"]
        return SETUP_NS["dsp_mult"] if port[:1] in "AB" else SETUP_NS["dsp_reg"]
    return SETUP_NS["ff"]


def _through(cell: dict, port: str) -> tuple[float, dict]:
    """Delay and counts of a combinational cell, entered at `port`."""
    kind = cell["type"]
    if kind.startswith("LUT") or kind == "INV":
        return LUT_NS, {"lut_levels": 1}
    if kind in ("MUXF7", "MUXF8"):
        return MUXF_NS, {"muxf": 1}
    if kind == "CARRY4":
        return (CARRY_NS if port == "CI" else CARRY_ENTRY_NS), {"carry4": 1}
    if kind in LUTRAM_CELLS:
        return LUTRAM_NS, {"lutram": 1}
    if kind == "DSP48E1":
        return DSP_COMB_NS, {"dsp": 1}
    return 0.0, {}  # buffers and constants


def longest_paths(netlist: dict, top: str, owner) -> dict[str, Path]:
    """{owner: the longest path ending in it} over the flattened module `top` of a yosys JSON netlist;
    `owner(cell_name)` names the layer a cell belongs to."""
    cells = netlist["modules"][top]["cells"]
    driver: dict[int, str] = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = name
    arrival: dict[str, Path] = {}

    def at(bit) -> Path:
        """The longest path arriving at a net, iteratively (chains of CARRY4 and LUTs are deep)."""
        if not isinstance(bit, int) or bit not in driver:
            return Path()
        stack = [driver[bit]]
        while stack:
            name = stack[-1]
            if name in arrival:
                stack.pop()
                continue
            cell = cells[name]
            if _sequential(cell):
                arrival[name] = Path(ns=_start_ns(cell))
                stack.pop()
                continue
            inputs = [
                (port, b)
                for port, bits in cell["connections"].items()
                if cell.get("port_directions", {}).get(port) == "input" and not _written(cell, port)
                for b in bits
                if isinstance(b, int) and b in driver
            ]
            pending = [driver[b] for _, b in inputs if driver[b] not in arrival]
            if pending:
                stack.extend(pending)
                continue
            best = Path()
            for port, b in inputs:
                ns, counts = _through(cell, port)
                candidate = arrival[driver[b]].plus(ns, **counts)
                if candidate.ns > best.ns:
                    best = candidate
            if not inputs:
                ns, counts = _through(cell, "")
                best = best.plus(ns, **counts)
            arrival[name] = best
            stack.pop()
        return arrival[driver[bit]]

    worst: dict[str, Path] = {}
    for name, cell in cells.items():
        sequential = _sequential(cell)
        if not sequential and cell["type"] not in LUTRAM_CELLS:
            continue
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) != "input" or port in ("C", "CLK", "CLKARDCLK", "CLKBWRCLK"):
                continue
            if not sequential and not _written(cell, port):
                continue
            for bit in bits:
                path = at(bit).plus(_setup_ns(cell, port))
                layer = owner(name)
                if layer not in worst or path.ns > worst[layer].ns:
                    worst[layer] = path
    return worst


def carry_chains(netlist: dict, top: str, owner) -> dict[str, int]:
    """{owner: its longest chain of CARRY4 cells joined CO[3] -> CI}: an adder's or comparator's width in
    fours of bits, whatever path the delay ranking picked."""
    cells = netlist["modules"][top]["cells"]
    carries = {name: cell for name, cell in cells.items() if cell["type"] == "CARRY4"}
    by_co3 = {cell["connections"]["CO"][3]: name for name, cell in carries.items()}
    longest: dict[str, int] = {}
    for name, cell in carries.items():
        length, current = 1, cell
        while current["connections"]["CI"][0] in by_co3:
            current = carries[by_co3[current["connections"]["CI"][0]]]
            length += 1
        layer = owner(name)
        longest[layer] = max(longest.get(layer, 0), length)
    return longest


def fmax_mhz(path: Path) -> float:
    return round(1000.0 / path.ns, 1) if path.ns else float("inf")
