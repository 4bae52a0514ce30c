"""docs/deployability.md from the deployability study's table (examples/studies/deployability.yaml).

    qonnx-spartan study examples/studies/deployability.yaml -o out/deployability [--scheduler ...]
    python benchmarks/deployability.py out/deployability [OUT2 ...] [--doc docs/deployability.md]

The study computes (and keeps, content-addressed, in its store); this script only writes the report: the
grid with (a) every memory in LUTs, (b) the BRAM placement and (c) the search, the counts, the syntheses and
the test RMSE over seeds (mean and spread).  Several outputs of the study (runs of some of its stages,
`--stages`) are read together; a stage none of them ran is reported as not run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qonnx_spartan.study.spec import load_study  # noqa: E402
from qonnx_spartan.study.table import read_csv  # noqa: E402

STUDY = REPO / "examples" / "studies" / "deployability.yaml"

SHOWN = ("LUT", "LUTRAM", "BRAM18", "DSP")
STYLES = {"a": "distributed", "b": "budget"}


def name(r: dict) -> str:
    return f"w{r['window']} d{r['d_model']} b{r['bits']}"


def per_config(rows: list[dict]) -> list[dict]:
    """One row per configuration, each column its first known value over the runs and seeds: estimates and
    searches do not depend on the seed, and a run still going has some of them pending."""
    merged: dict[str, dict] = {}
    for r in rows:
        into = merged.setdefault(name(r), {})
        for k, v in r.items():
            if into.get(k) is None:
                into[k] = v
    return list(merged.values())


def cells(r: dict, prefix: str) -> str:
    if r.get(f"{prefix}_LUT") is None:
        return "- | - | -"
    res = "/".join(str(r[f"{prefix}_{k}"]) for k in SHOWN)
    fits = "yes" if r[f"{prefix}_fits"] else f"no ({r.get(f'{prefix}_over') or 'no plan'})"
    return f"{res} | {fits} | {r['cycles']}"


def grid_table(configs: list[dict]) -> str:
    head = (
        "| config | (a) distributed LUT/LUTRAM/BRAM18/DSP | fits | cycles | (b) budget LUT/LUTRAM/BRAM18/DSP | fits "
        "| cycles | (c) search LUT/LUTRAM/BRAM18/DSP | fits | cycles | search plan | error (output LSBs) | verdict |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in configs:
        search = cells(r, "search") if r.get("search_LUT") is not None else "- | - | -"
        if r.get("search_fits") is False:
            search = "- | no plan | -"
        err = f"{r['search_rms_lsb']:.2f}" if r.get("search_rms_lsb") is not None else "-"
        lines.append(
            f"| {name(r)} | {cells(r, 'distributed')} | {cells(r, 'budget')} | {search} "
            f"| {r.get('search_widths') or '-'} bits | {err} | {r.get('verdict')} |".replace("| - bits |", "| - |")
        )
    return "\n".join(lines)


def counts(configs: list[dict]) -> str:
    def has(v: str) -> list[dict]:
        return [r for r in configs if (r.get("verdict") or "").startswith(v)]

    groups = {
        "fit (a), every memory in LUTs": has("fits (distributed)"),
        "made deployable by BRAM (b)": has("made deployable (budget)"),
        "made deployable by the search (c)": has("made deployable (search)"),
        "fit nothing": has("does not fit"),
    }
    lines = ["| verdict | count | configurations |", "|---|---|---|", f"| configurations | {len(configs)} | |"]
    lines += [f"| {k} | {len(v)} | {', '.join(map(name, v)) or '-'} |" for k, v in groups.items()]
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def train_table(rows: list[dict]) -> str:
    trained = [r for r in rows if r.get("rmse_float") is not None or r.get("rmse_qat") is not None]
    if not trained:
        return "(not run: the study's train stage has no results yet)"
    lines = [
        "| config | plan | seeds | persistence | float | QAT Brevitas | integer reference | GHDL hardware | bit-exact"
        " |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by = {}
    for r in trained:
        by.setdefault(name(r), []).append(r)
    for config, group in sorted(by.items()):
        plan = "searched" if group[0].get("train_plan") == "searched" else f"uniform {group[0]['bits']} bits"
        plan = plan if any(r.get("rmse_qat") is not None for r in group) else "- (QAT not run)"
        exact = {r.get("sim_bit_exact") for r in group} - {None}
        seeds, persistence = len({r["seed"] for r in group}), spread([r["rmse_persistence"] for r in group[:1]])
        lines.append(
            f"| {config} | {plan} | {seeds} | {persistence} "
            f"| {spread([r['rmse_float'] for r in group])} | {spread([r['rmse_qat'] for r in group])} "
            f"| {spread([r.get('rmse_integer') for r in group])} | {spread([r.get('rmse_hardware') for r in group])} "
            f"| {'yes' if exact == {True} else ('-' if not exact else 'NO')} |"
        )
    return "\n".join(lines)


def synth_table(rows: list[dict]) -> str:
    done = [r for r in rows if r.get("synth_LUT") is not None]
    if not done:
        return "(not run: the study's synth stage has no results yet)"
    rs = ("LUT", "LUTRAM", "FF", "BRAM18", "DSP")
    lines = [
        "| config | model | strategy | " + " | ".join(f"{r} est / syn" for r in rs) + " | synth s | fits (synthesis) |",
        "|" + "---|" * (len(rs) + 5),
    ]
    for r in done:
        pair = " | ".join(f"{r[f'build_{k}']} / {r[f'synth_{k}']}" for k in rs)
        fits = "yes" if r["synth_fits"] else f"no ({r['synth_over']})"
        model = f"trained, seed {r['seed']}" if r.get("build_trained") else "untrained"
        lines.append(f"| {name(r)} | {model} | {r['build_strategy']} | {pair} | {r['synth_seconds']} | {fits} |")
    errs = [(r["build_LUT"] - r["synth_LUT"]) / r["synth_LUT"] for r in done]
    lines.append(f"\nLUT estimate against synthesis: {100 * min(errs):+.1f} % to {100 * max(errs):+.1f} %.")
    return "\n".join(lines)


def ran(rows: list[dict]) -> str:
    """What a run's table says of each stage: rows computed, reused, skipped, failed, pending."""
    parts = []
    for column in [c for c in rows[0] if c.endswith("_status")]:
        kinds = Counter(str(r[column]).split(":")[0] for r in rows)
        parts.append(f"{column.removesuffix('_status')}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    return "; ".join(parts)


DOC = """# Deployability on the XC7S15

The grid of arXiv 2410.03294: window {{6, 12, 24}} x d_model {{16, 32, 64}} x uniform bits {{4, 6, 8}}, the
example forecaster (examples/forecasting: one encoder layer, 1 head, 3 features, power-of-two scales, FFN
4 d_model), as the study examples/studies/deployability.yaml describes it.  This page is written by
`python benchmarks/deployability.py {outs}` from the study's tables, made by

{runs}

{not_run}

- **Estimates** (`qonnx_spartan.flow.estimate_only`, one lane) of the untrained model whose activation
  ranges Brevitas calibrated on elecdemand training windows: DSP, BRAM18, LUTRAM and cycles are counted, LUT
  and FF fitted to synthesis (docs/estimator.md), so a LUT figure within a few percent of 8000 is not a safe
  margin.  **(a)** every memory in LUTs; **(b)** the flow's `memory_style="budget"`: memories moved to
  BRAM18, most LUTs saved per BRAM18 first, while the LUTs overflow.  "over" lists the overflowing resources,
  the most over first.
- **(c) search** (`qonnx_spartan.search.search`, widths 4, 6, 8 per module, memories placed by its integer
  program) for the configurations that fit neither; its error is the plan's RMS distance, in output LSBs,
  from the configuration's own integer reference on 64 validation windows.
- The configurations **made deployable** by (b) or (c) are trained (float, then QAT from its weights, 8
  epochs per phase, with the searched widths where the search found the plan) with seeds 0, 1, 2, built from
  the trained model and simulated (Verilator) on 64 evenly spaced test windows; seed 0's design is
  synthesised (GHDL + yosys `synth_xilinx`). QAT Brevitas is measured on the whole test set, the integer
  reference and the hardware on those 64 windows, so the two are not the same sample.

## The grid (estimates)

{grid}

{counts}

## Synthesis of the points made deployable

{synth}

## Test RMSE on elecdemand (GW; mean ± standard deviation over seeds)

QAT Brevitas is the trained model on the whole test set; the integer reference and the GHDL hardware are
the built design on the simulated test windows.

{train}
"""


def run_line(out: Path, doc: dict, rows: list[dict]) -> str:
    stages = ",".join(doc["study"]["stages"])
    when = (
        f"{doc['seconds']:.0f} s"
        if doc["status"] not in ("running", "interrupted")
        else f"{doc['status']} when this page was written (started {doc['started']}; its table as it was then)"
    )
    return (
        f"- `qonnx-spartan study examples/studies/deployability.yaml -o {out} --stages {stages}`: {when}, "
        f"hardware version `{doc['hardware_version']}`; rows per stage: {ran(rows)}."
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outs", type=Path, nargs="+", help="the study's output folders (table.csv, study.json)")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "deployability.md")
    args = ap.parse_args(argv)
    tables = [read_csv(out / "table.csv") for out in args.outs]
    rows = [r for t in tables for r in t]
    docs = [json.loads((out / "study.json").read_text()) for out in args.outs]
    configs = per_config(rows)
    ran_stages = {s for doc in docs for s in doc["study"]["stages"]}
    missing = [s for s in load_study(STUDY).stages if s not in ran_stages]
    text = DOC.format(
        not_run=f"Stages of the study none of these runs took: {', '.join(missing)}." if missing else "",
        outs=" ".join(map(str, args.outs)),
        runs="\n".join(run_line(out, doc, t) for out, doc, t in zip(args.outs, docs, tables)),
        grid=grid_table(configs),
        counts=counts(configs),
        synth=synth_table(rows),
        train=train_table(rows),
    )
    args.doc.write_text(text)
    print(f"wrote {args.doc} from {len(rows)} rows ({len(configs)} configurations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
