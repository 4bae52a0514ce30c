"""The study's tidy table: one row per configuration and seed, one column per measured quantity.

Columns: the configuration's values and seed; rmse_persistence, rmse_float, rmse_qat, rmse_integer,
rmse_hardware (test set, the data's units; integer and hardware on the simulated windows); per estimated
memory style S: S_LUT .. S_DSP, S_fits, S_over; cycles and latency_us (estimate); search_* (the plan's
resources, fits, rms_lsb, widths); build_* (the built design's estimate, strategy, whether from the
trained model); sim_* (GHDL: windows, bit_exact, cycles); synth_* (yosys: resources, fits, over,
seconds); verdict; and per stage `<stage>_status` (computed, reused, skipped: why, error: message;
pending while the study runs).
Written as CSV and Parquet.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from qonnx_spartan.atomic import write_atomically
from qonnx_spartan.ops.base import RESOURCES
from qonnx_spartan.study.stages import SKIPPED, unusable


def status(result: dict | None) -> str:
    if result is None:
        return "pending"
    if SKIPPED in result:
        return f"skipped: {result[SKIPPED]}"
    if "error" in result:
        return f"error: {result['error']}"
    return "reused" if result.get("reused") else "computed"


def resources(prefix: str, total: dict | None) -> dict:
    return {f"{prefix}_{r}": (total or {}).get(r) for r in RESOURCES}


def verdict(estimate: dict | None, search: dict | None) -> str | None:
    """How the configuration fits: by the first memory style, by a later one, by the search's plan, or not."""
    if not estimate or "styles" not in estimate:
        return None
    styles = list(estimate["styles"].items())
    for k, (style, r) in enumerate(styles):
        if r["fits"]:
            return f"fits ({style})" if k == 0 else f"made deployable ({style})"
    if search and search.get("fits"):
        return "made deployable (search)"
    return "does not fit"


def usable(result: dict | None) -> dict:
    return {} if unusable(result) else result


def row(config: dict, seed: int, results: dict[str, dict | None], stages: list[str]) -> dict:
    """The table row of one configuration and seed from its stages' results."""
    out = {**config, "seed": seed}
    tf, tr, sim = (usable(results.get(s)) for s in ("train_float", "train", "simulate"))
    out |= {
        "rmse_persistence": tf.get("rmse_persistence"),
        "rmse_float": tf.get("rmse_float"),
        "rmse_qat": tr.get("rmse_qat"),
        "rmse_integer": sim.get("rmse_integer"),
        "rmse_hardware": sim.get("rmse_hardware"),
    }
    est = usable(results.get("estimate"))
    for style, r in est.get("styles", {}).items():
        out |= resources(style, r["total"]) | {f"{style}_fits": r["fits"], f"{style}_over": r["over"]}
    out |= {"cycles": est.get("cycles"), "latency_us": est.get("latency_us")}
    if "search" in stages:
        se = usable(results.get("search"))
        widths = Counter(se.get("widths", {}).values())
        out |= resources("search", se.get("total")) | {
            "search_fits": (results.get("search") or {}).get("fits"),
            "search_rms_lsb": se.get("rms_lsb"),
            "search_widths": ", ".join(f"{n}x{b}" for b, n in sorted(widths.items())) or None,
        }
    if "train" in stages:
        out["train_plan"] = tr.get("plan")
    if "build" in stages:
        b = usable(results.get("build"))
        out |= resources("build", b.get("total")) | {
            "build_strategy": b.get("strategy"),
            "build_trained": b.get("trained"),
            "build_cycles": b.get("cycles"),
        }
    if "simulate" in stages:
        out |= {
            "sim_windows": sim.get("windows"),
            "sim_bit_exact": sim.get("bit_exact"),
            "sim_cycles": sim.get("cycles"),
        }
    if "synth" in stages:
        sy = usable(results.get("synth"))
        out |= resources("synth", sy.get("total")) | {
            "synth_fits": sy.get("fits"),
            "synth_over": sy.get("over"),
            "synth_seconds": sy.get("tool_seconds"),
        }
    out["verdict"] = verdict(est, results.get("search"))
    for stage, result in results.items():
        out[f"{stage}_status"] = status(result)
    return out


def columns(rows: list[dict]) -> list[str]:
    """Every column of any row, in the order they first appear."""
    return list(dict.fromkeys(k for r in rows for k in r))


def write_csv(rows: list[dict], path: Path) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns(rows))
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = columns(rows)
    table = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows])
    write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def read_csv(path: Path) -> list[dict]:
    """A written table back, with numbers and booleans as such (empty cells: None)."""

    def value(text: str):
        if text == "":
            return None
        if text in ("True", "False"):
            return text == "True"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with Path(path).open(newline="") as f:
        return [{k: value(v) for k, v in r.items()} for r in csv.DictReader(f)]
