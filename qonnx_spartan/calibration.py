"""Fitting the estimator's coefficients to synthesis: rows of (features, measured counts) per layer.

A row is one layer of a synthesised build - its parts' features summed per coefficient group, and what
the tool counted for it (the layer's entity with its ROMs, plus its output buffer; "top" is the control
and the input buffer).  Counts come from `qonnx-spartan synth` (report/synth.json, yosys) or from Vivado's
`report_utilization -hierarchical` (vivado/utilization_hierarchical.rpt, written by vivado/build.tcl).
The fit is a non-negative least-squares problem per resource: every feature can only cost.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from qonnx_spartan.coefficients import FITTED, Coefficients
from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import layer_parts, part_resources
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.base import RESOURCES

VIVADO_REPORT = Path("vivado") / "utilization_hierarchical.rpt"
YOSYS_REPORT = Path("report") / "synth.json"


def build_rows(build_dir: Path, vivado_report: Path | None = None, measured: dict | None = None) -> list[dict]:
    """One row per layer (and "top") of a synthesised build.  `measured` ({layer: counts}) stands in for
    the synthesis report when only the features changed: the hardware, and so its counts, are the same."""
    build_dir = Path(build_dir)
    names = read_json(build_dir / "report" / "build.json").get("names")
    if not names:
        raise SpartanError(f"{build_dir}: not a build with generated HDL (report/build.json has no names)")
    if measured is not None:
        tool = "yosys synth_xilinx -family xc7"
    elif vivado_report is not None:
        measured, tool = vivado_layers(vivado_report, names), "vivado"
    else:
        measured, tool = read_json(build_dir / YOSYS_REPORT)["layers"], "yosys synth_xilinx -family xc7"
    design = Design(load_model(build_dir / "model_int.onnx"))
    fingerprints = {lay.name: hardware_fingerprint(lay.op.onnx_node) for lay in design.layers}
    # the top level: its layers in order, and the input buffer the host fills
    source = design.input_buffer.memory
    top = "".join(fingerprints.values()) + f"{source.depth}x{source.width} {source.style}"
    fingerprints["top"] = hashlib.sha1(top.encode()).hexdigest()[:16]
    rows = []
    for layer, parts in layer_parts(design).items():
        if layer not in measured:
            raise SpartanError(f"{build_dir}: layer '{layer}' has no count in the synthesis report")
        features: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for group, part_features, _ in parts:
            for name, value in part_features.items():
                features[group][name] += value
        op = next((lay.op.onnx_node.op_type for lay in design.layers if lay.name == layer), "top")
        rows.append(
            {
                "layer": layer,
                "op": op,
                "tool": tool,
                "features": {g: dict(f) for g, f in features.items()},
                "exact": part_resources([(g, {}, exact) for g, _, exact in parts]),
                "measured": {r: int(measured[layer][r]) for r in RESOURCES},
                "hardware": fingerprints[layer],
            }
        )
    return rows


#: Node attributes the estimator writes: they change with the estimator, not with the hardware.
ESTIMATE_ATTRIBUTES = ("res_estimate", "cycles_estimate")


def hardware_fingerprint(node) -> str:
    """A short digest of everything in a layer's node that decides its hardware (not the estimate written
    on it): a rebuilt design whose layers have the recorded digests has the recorded counts."""
    kept = [a.SerializeToString() for a in node.attribute if a.name not in ESTIMATE_ATTRIBUTES]
    digest = hashlib.sha1(node.op_type.encode() + b"".join(sorted(kept)))
    for name in (*node.input, *node.output):
        digest.update(name.encode())
    return digest.hexdigest()[:16]


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise SpartanError(f"{path}: not found (synthesise the build first: qonnx-spartan synth)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SpartanError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None


def fit(rows: list[dict], tool: str, keep: Coefficients | None = None) -> Coefficients:
    """Non-negative weights per (group, feature) minimising the squared error of each row's LUT and FF.

    With `keep`, the groups it has are taken as they are and only the others are fitted, to what the kept
    groups leave of each row: a new op's group is calibrated without moving any existing estimate."""
    if not rows:
        raise SpartanError("calibrate: no synthesised layers to fit")
    kept = keep.groups if keep is not None else {}
    columns = sorted({(g, f) for row in rows for g, feats in row["features"].items() for f in feats if g not in kept})
    a = np.array([[row["features"].get(g, {}).get(f, 0.0) for g, f in columns] for row in rows], dtype=np.float64)
    # every group of the rows, even one whose weights all come out 0: a group missing from the file is an error
    groups: dict[str, dict[str, dict[str, float]]] = {g: {} for g, _ in columns}
    # the rows the fitted groups explain: all of them, or with `keep` those with a group it lacks
    own = [i for i, row in enumerate(rows) if keep is None or any(g not in kept for g in row["features"])]
    summary = {"rows": len(own), "designs": len({rows[i].get("design", "") for i in own})}
    for resource in FITTED:  # what the exact parts count (a LUTRAM is a LUT) is not fitted again
        y = np.array(
            [
                row["measured"][resource] - row.get("exact", {}).get(resource, 0) - kept_cost(row, kept, resource)
                for row in rows
            ],
            dtype=float,
        )
        weights, _ = nnls(a, y, maxiter=50 * len(columns)) if columns else (np.zeros(0), 0.0)
        for (g, f), w in zip(columns, weights):
            if w > 1e-9:
                groups[g].setdefault(resource, {})[f] = round(float(w), 6)
        residual = (a @ weights - y)[own]
        summary[resource] = {"rms_per_layer": round(float(np.sqrt(np.mean(residual**2))), 2)}
    if keep is not None:  # each added group's fit is summarised beside those added before
        added = {**keep.fit.get("added", {}), **{g: summary for g in groups}}
        return Coefficients(keep.tool, {**kept, **groups}, {**keep.fit, "added": added})
    return Coefficients(tool, groups, summary)


def kept_cost(row: dict, kept: dict, resource: str) -> float:
    """What the kept groups' weights give a row's features, unrounded (the fit's own terms are unrounded)."""
    return sum(
        weight * row["features"][g].get(f, 0.0)
        for g in row["features"]
        if g in kept
        for f, weight in kept[g].get(resource, {}).items()
    )


# -- Vivado's hierarchical utilisation report ------------------------------------------------------------
VIVADO_COLUMNS = {
    "LUT": ("Total LUTs",),
    "LUTRAM": ("LUTRAMs",),
    "SRL": ("SRLs",),
    "FF": ("FFs",),
    "RAMB36": ("RAMB36",),
    "RAMB18": ("RAMB18",),
    "DSP": ("DSP48 Blocks", "DSP Blocks", "DSPs"),
}


def vivado_instances(text: str, origin: str) -> dict[str, dict[str, int]]:
    """{hierarchical instance path ("" for the top): counts} from the table of `report_utilization
    -hierarchical`; LUTRAM includes SRLs (both are SLICEM LUTs) and BRAM18 counts a RAMB36 as two.  Rows of a
    module's own logic, "(name)", are skipped: a parent's row already includes them."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "Instance" in line and "Total LUTs" in line), None)
    if start is None:
        raise SpartanError(f"{origin}: no utilisation table (expected Vivado's report_utilization -hierarchical)")
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    index = {}
    for key, names in VIVADO_COLUMNS.items():
        found = [header.index(n) for n in names if n in header]
        if not found:
            raise SpartanError(f"{origin}: the utilisation table has no '{names[0]}' column")
        index[key] = found[0]
    instances, path = {}, []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            if instances:
                break  # the table ended
            continue  # the rule under the header
        cells = line.strip().strip("|").split("|")
        raw = cells[0].rstrip()
        name = raw.strip()
        if set(name) <= set("-") or name.startswith("("):
            continue
        depth = (len(raw) - len(raw.lstrip())) // 2
        path = path[: max(depth - 1, 0)] + [name] if depth else []
        try:
            numbers = {k: int(float(cells[i].strip() or 0)) for k, i in index.items()}
        except (ValueError, IndexError):
            raise SpartanError(f"{origin}: unreadable utilisation row '{name}'") from None
        instances["/".join(path)] = {
            "LUT": numbers["LUT"],
            "LUTRAM": numbers["LUTRAM"] + numbers["SRL"],
            "FF": numbers["FF"],
            "BRAM18": numbers["RAMB18"] + 2 * numbers["RAMB36"],
            "DSP": numbers["DSP"],
        }
    if "" not in instances:
        raise SpartanError(f"{origin}: the utilisation table has no top-level row")
    return instances


def vivado_layers(report: Path, names: dict) -> dict[str, dict[str, int]]:
    """Per layer: its instance (with its ROMs) and its output buffer; "top": the rest."""
    if not Path(report).is_file():
        raise SpartanError(f"{report}: Vivado report not found")
    instances = vivado_instances(Path(report).read_text(errors="replace"), str(report))
    layers = {}
    for layer, info in names["layers"].items():
        parts = [info.get("instance", ""), info["output_buffer"]]
        missing = [p for p in parts if p not in instances]
        if missing:
            raise SpartanError(f"{report}: no instance '{missing[0]}' (layer '{layer}') in the table")
        layers[layer] = {r: sum(instances[p][r] for p in parts) for r in RESOURCES}
    layers["top"] = {r: instances[""][r] - sum(v[r] for v in layers.values()) for r in RESOURCES}
    return layers


def row_estimate(row: dict, coefficients: Coefficients) -> dict[str, int]:
    """One row's estimate with `coefficients`: its exact parts and each group's fitted cost."""
    estimated = {**row["exact"]}
    for group, features in row["features"].items():
        for r, v in coefficients.apply(group, features).items():
            estimated[r] = estimated.get(r, 0) + v
    return estimated


def design_totals(rows: list[dict], coefficients: Coefficients) -> dict[str, dict]:
    """Per design: the estimate with `coefficients` against the measured totals."""
    designs: dict[str, dict] = {}
    for row in rows:
        entry = designs.setdefault(row.get("design", ""), {"estimate": dict.fromkeys(RESOURCES, 0)})
        entry.setdefault("measured", dict.fromkeys(RESOURCES, 0))
        estimated = row_estimate(row, coefficients)
        for r in RESOURCES:
            entry["estimate"][r] += estimated.get(r, 0)
            entry["measured"][r] += row["measured"][r]
    return designs


def calibrate(
    builds: list[Path], vivado: bool = False, row_files: list[Path] = (), keep: Coefficients | None = None
) -> tuple[Coefficients, list]:
    """Coefficients fitted to synthesised builds (their yosys report, or vivado/ reports) and stored rows;
    with `keep`, only the groups it lacks (see `fit`)."""
    rows = []
    for path in row_files:
        stored = json.loads(Path(path).read_text()) if Path(path).is_file() else None
        if not isinstance(stored, list):
            raise SpartanError(f"{path}: not a calibration rows file (a JSON list, as calibration/sweep.py writes)")
        rows += stored
    for build_dir in builds:
        report = Path(build_dir) / VIVADO_REPORT if vivado else None
        rows += [{"design": str(build_dir), **row} for row in build_rows(build_dir, report)]
    tools = sorted({row.get("tool", "") for row in rows})
    return fit(rows, " + ".join(tools), keep), rows
