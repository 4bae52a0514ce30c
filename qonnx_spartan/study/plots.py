"""The study's plots: accuracy against LUTs and against latency, with the Pareto front of each device.

Accuracy is the best-measured RMSE of a row (hardware, else integer reference, else QAT), averaged over
seeds; LUTs are the synthesised count where there is one, else the built design's estimate, else the first
estimated memory style that fits.  A study without accuracy (no train stage) gets LUTs against latency.
matplotlib is the optional `plot` extra: without it the table is written and the plots are left out.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from qonnx_spartan.atomic import write_atomically
from qonnx_spartan.search_plot import available

ACCURACY = ("rmse_hardware", "rmse_integer", "rmse_qat")


def first(row: dict, names) -> float | None:
    return next((row[n] for n in names if row.get(n) is not None), None)


def luts(row: dict, styles: list[str]) -> float | None:
    fitting = [f"{s}_LUT" for s in styles if row.get(f"{s}_fits")]
    return first(row, ["synth_LUT", "build_LUT", *fitting, "search_LUT"])


def points(rows: list[dict], styles: list[str], config_keys: list[str], device: str) -> list[dict]:
    """One point per configuration (seeds averaged) that fits, with its device (`device` unless the
    configuration names one), LUTs, latency, accuracy."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("verdict") not in (None, "does not fit"):
            groups[tuple(r.get(k) for k in config_keys)].append(r)
    out = []
    for key, group in groups.items():
        acc = [a for a in (first(r, ACCURACY) for r in group) if a is not None]
        out.append(
            {
                "label": " ".join(f"{k}={v}" for k, v in zip(config_keys, key) if k != "device"),
                "device": group[0].get("device") or device,
                "LUT": luts(group[0], styles),
                "latency_us": group[0].get("latency_us"),
                "rmse": sum(acc) / len(acc) if acc else None,
            }
        )
    return [p for p in out if p["LUT"] is not None and p["latency_us"] is not None]


def pareto(pts: list[dict], x: str, y: str) -> list[dict]:
    """The points no other point beats on both x and y (both smaller is better), by x."""
    front, best = [], float("inf")
    for p in sorted(pts, key=lambda p: (p[x], p[y])):
        if p[y] < best:
            front.append(p)
            best = p[y]
    return front


def write_plots(rows: list[dict], styles: list[str], config_keys: list[str], device: str, folder: Path) -> list[Path]:
    """The PNGs in `folder` (none without matplotlib or without a point that fits)."""
    if not available():
        return []
    pts = points(rows, styles, config_keys, device)
    if not pts:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    accurate = [p for p in pts if p["rmse"] is not None]
    figures = [("LUT", "rmse"), ("latency_us", "rmse")] if accurate else [("latency_us", "LUT")]
    written = []
    for x, y in figures:
        path = folder / f"{y}_vs_{x}.png"
        write_atomically(path, lambda tmp: draw(accurate or pts, x, y, tmp))
        written.append(path)
    return written


LABELS = {"LUT": "LUT", "latency_us": "latency (us, estimate)", "rmse": "test RMSE"}


def draw(pts: list[dict], x: str, y: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_device = defaultdict(list)
    for p in pts:
        by_device[p["device"]].append(p)
    for device, group in sorted(by_device.items()):
        dots = ax.plot([p[x] for p in group], [p[y] for p in group], "o", alpha=0.6, label=f"{device}")
        front = pareto(group, x, y)
        ax.step(
            [p[x] for p in front],
            [p[y] for p in front],
            where="post",
            color=dots[0].get_color(),
            label=f"{device} Pareto front",
        )
        for p in front:
            ax.annotate(p["label"], (p[x], p[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if x == "latency_us":
        ax.set_xscale("log")
    ax.set_xlabel(LABELS[x])
    ax.set_ylabel(LABELS[y])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
