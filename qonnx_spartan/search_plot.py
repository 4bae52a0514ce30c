"""The Pareto plot of a search (PLAN.pareto.png): output error against each resource, the budget's limits
dashed and the chosen plan marked.  matplotlib is the optional `plot` extra: the search itself does not
need it, so without it the plot is left out and the JSON documents still written."""

from __future__ import annotations

from pathlib import Path

PANELS = ("LUT", "LUTRAM", "BRAM18", "DSP")


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_front(doc: dict, path: Path) -> None:
    """Draw PLAN.pareto.json's points (error in output LSBs against resources) into a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    points = sorted(doc["points"], key=lambda p: p["rms_lsb"])
    chosen = doc["chosen"]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharey=True)
    for ax, resource in zip(axes.flat, PANELS):
        ax.plot([p["resources"][resource] for p in points], [p["rms_lsb"] for p in points], "o", color="tab:blue")
        ax.plot(chosen["resources"][resource], chosen["rms_lsb"], "*", color="tab:red", markersize=14, label="chosen")
        ax.axvline(doc["budget"][resource], color="grey", linestyle="--", label="budget")
        ax.set_xlabel(f"{resource} (estimate)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("RMS error (output LSBs)")
    axes[0, 0].legend(loc="upper right")
    cycles = chosen["cycles"]
    fig.suptitle(f"{doc['device']}: error against resources, widths {doc['widths']}, {cycles} cycles at one lane")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
