"""The front-end corpus (issue #15, tests/frontend_models.py) measured: every model with both exporters,
built through `qonnx-spartan build`, simulated in GHDL and compared with Brevitas.

    python benchmarks/frontend.py [--only NAME,...] [--exporters torchscript,dynamo] [--work DIR]
                                  [--doc docs/frontend.md] [--status FILE] [--synth NAME,...] [--no-doc]

Prints the table (model, exporter, built?, bit-exact vectors, max / mean LSB against Brevitas, % exact,
LUT / DSP estimate, device) and writes it into the doc between the lines `<!-- corpus-table -->` and
`<!-- /corpus-table -->` (the prose around them is not touched; without the markers the section is
appended).  --status writes the same facts with each refusal's first line and each export's op types, for
whoever makes the refused models work.  --synth synthesises (GHDL + yosys) the named models' TorchScript
builds and compares with the estimate: LUT and FF within 3 %, BRAM18, DSP, LUTRAM and cycles exact.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "examples" / "forecasting")]

import frontend_models as fm  # noqa: E402

START, END = "<!-- corpus-table -->", "<!-- /corpus-table -->"
NOTES = "## Notes"
#: The synthesised check (issue #15): three corpus models, one per kind of design.
SYNTH_DEFAULT = ["matmul_attention_2heads_5bit", "bn_transpose_7bit", "tinytransformer_1layer_po2_8bit"]
LUT_FF_TOLERANCE = 0.03


def op_census(onnx_path: Path) -> str:
    import onnx

    counts = collections.Counter(n.op_type for n in onnx.load(str(onnx_path)).graph.node)
    return ", ".join(f"{op} {k}" for op, k in sorted(counts.items()))


def row(o: fm.Outcome) -> dict:
    r = {"model": o.case, "exporter": o.exporter, "device": o.device or "-", "built": bool(o.cli and o.cli.built)}
    if o.measured is not None:
        m = o.measured
        r.update(
            vectors=m.vectors,
            bit_exact=m.bit_exact,
            max_lsb=m.max_lsb,
            mean_lsb=m.mean_lsb,
            exact_pct=m.exact_pct,
            cycles=m.cycles,
        )
    if o.build_dir is not None:
        t = fm.estimate_totals(o.build_dir)["total"]
        r.update(LUT=t["LUT"], DSP=t["DSP"], FF=t["FF"], BRAM18=t["BRAM18"])
    r["status"] = fm.status_line(o)
    return r


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | exporter | built | GHDL bit-exact | max LSB | mean LSB | % exact | LUT | DSP | device |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "vectors" in r:
            exact = f"{r['vectors']} of {r['vectors']}" if r["bit_exact"] else "no"
            nums = f"{r['max_lsb']:.2f} | {r['mean_lsb']:.3f} | {r['exact_pct']:.0f}"
        else:
            exact, nums = "-", "- | - | -"
        built = "yes" if r["built"] else "no"
        lut = f"{r['LUT']} | {r['DSP']}" if "LUT" in r else "- | -"
        lines.append(f"| {r['model']} | {r['exporter']} | {built} | {exact} | {nums} | {lut} | {r['device']} |")
    return "\n".join(lines)


def synth_table(results: list[dict]) -> str:
    lines = [
        "| model | resource | synthesised | estimate | difference | check |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in results:
        if "error" in s:
            lines.append(f"| {s['model']} | - | - | - | - | {s['error']} |")
            continue
        for res, (syn, est) in s["compare"].items():
            if res in ("LUT", "FF"):
                diff = (est - syn) / syn if syn else float("inf")
                ok = abs(diff) <= LUT_FF_TOLERANCE
                d = f"{100 * diff:+.1f} %"
            else:
                ok, d = syn == est, f"{est - syn:+d}"
            lines.append(f"| {s['model']} | {res} | {syn} | {est} | {d} | {'ok' if ok else 'OUT'} |")
    return "\n".join(lines)


def synthesise(o: fm.Outcome) -> dict:
    from qonnx_spartan.synth import synthesise as synth

    if o.build_dir is None or o.measured is None:
        return {"model": o.case, "error": f"not built and simulated: {fm.status_line(o)}"}
    report = synth(o.build_dir)
    est = fm.estimate_totals(o.build_dir)
    compare = {r: (report["total"][r], est["total"][r]) for r in ("LUT", "FF", "LUTRAM", "BRAM18", "DSP")}
    compare["cycles"] = (o.measured.cycles, est["cycles"])
    return {"model": o.case, "compare": compare, "seconds": report.get("seconds")}


def write_doc(doc: Path, text: str) -> None:
    section = f"{START}\n{text}\n{END}"
    old = doc.read_text() if doc.is_file() else ""
    if START in old:
        head, rest = old.split(START, 1)
        tail = rest.split(END, 1)[1] if END in rest else (rest.split(START, 1)[1] if START in rest else "")
        new = head + section + tail
    else:
        new = (old.rstrip() + "\n\n" if old else "# Front end\n\n") + section + "\n"
    doc.write_text(new)


def head_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()[:90]
    except OSError:
        return "?"


def write_status(path: Path, outcomes: list[fm.Outcome], rows: list[dict], seconds: float, synth: list[dict]):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    built = sum(r["built"] for r in rows)
    passing = sum(
        r.get("bit_exact", False) and r.get("max_lsb", 99) <= fm.MAX_LSB and r.get("vectors", 0) >= fm.VECTORS
        for r in rows
    )
    lines = [
        "# Front-end corpus status (tests/frontend_models.py, benchmarks/frontend.py)",
        "",
        f"{now}, at `{head_commit()}` (plus uncommitted changes in the worktree); {seconds:.0f} s.",
        f"{len(rows)} (model, exporter) pairs: {built} built, {passing} pass (bit-exact on >= {fm.VECTORS}"
        f" vectors and within {fm.MAX_LSB} LSB of Brevitas).",
        "",
        "Run one case: `python benchmarks/frontend.py --only NAME --no-doc --status /tmp/s.md`;",
        "the tests: `pytest tests/test_frontend.py -k NAME`.  Built models are compared with Brevitas",
        "per output element in the output's LSB (several outputs: concatenated in the order the model returns",
        "them; HostIO `outputs` (a list) is used if it exists, else `output`).",
        "",
        "## Per model and exporter",
        "",
    ]
    for o in outcomes:
        lines.append(f"- **{o.case}** / {o.exporter}: {fm.status_line(o)}")
    lines += ["", "## Idioms and exported op types", ""]
    by_case = collections.defaultdict(list)
    for o in outcomes:
        by_case[o.case].append(o)
    for name, os_ in by_case.items():
        case = fm.CASES[name]
        lines.append(f"- **{name}** ({case.idioms}; input {case.in_shape})")
        for o in os_:
            census = op_census(o.onnx) if o.onnx is not None else "-"
            lines.append(f"  - {o.exporter}: {census}")
    if synth:
        lines += ["", "## Synthesised against the estimate", "", synth_table(synth)]
    old = path.read_text() if path.is_file() else ""
    if NOTES in old:  # notes written by hand are kept: the header up to the next run-written section
        notes = NOTES + old.split(NOTES, 1)[1].split("\n## Per model", 1)[0]
        lines[lines.index("## Per model and exporter") : lines.index("## Per model and exporter")] = [
            notes.rstrip(),
            "",
        ]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated model names (default: the whole corpus)")
    p.add_argument("--exporters", default=",".join(fm.EXPORTERS))
    p.add_argument("--work", type=Path, default=Path("/tmp/qs_frontend"))
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "frontend.md")
    p.add_argument("--no-doc", action="store_true", help="do not write the table into the doc")
    p.add_argument("--status", type=Path, help="write the status file (per model: built, refusals, op types)")
    p.add_argument("--synth", nargs="?", const=",".join(SYNTH_DEFAULT), help="models to synthesise")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    names = args.only.split(",") if args.only else [c.name for c in fm.CORPUS + fm.REFUSALS]
    unknown = [n for n in names if n not in fm.CASES]
    if unknown:
        p.error(f"unknown models {unknown}; known: {', '.join(fm.CASES)}")
    exporters = args.exporters.split(",")
    t0 = time.time()
    outcomes = []
    for name in names:
        case = fm.CASES[name]
        model = case.model()
        for exporter in exporters:
            t = time.time()
            o = fm.run_case(case, exporter, args.work / name, model=model)
            outcomes.append(o)
            print(f"{name:38s} {exporter:11s} {fm.status_line(o)} [{time.time() - t:.0f} s]", flush=True)
    refusal_names = {c.name for c in fm.REFUSALS}
    rows = [row(o) for o in outcomes if o.case not in refusal_names]
    refused = [o for o in outcomes if o.case in refusal_names]
    table = markdown_table(rows)
    print()
    print(table)

    synth = []
    if args.synth:
        for name in args.synth.split(","):
            o = next((o for o in outcomes if o.case == name and o.exporter == "torchscript"), None)
            if o is None:
                o = fm.run_case(fm.CASES[name], "torchscript", args.work / name)
            print(f"synth: {name}", flush=True)
            synth.append(synthesise(o))
        print()
        print(synth_table(synth))

    seconds = time.time() - t0
    if args.status:
        write_status(args.status, outcomes, rows, seconds, synth)
    (args.work / "frontend.json").write_text(json.dumps({"rows": rows, "synth": synth}, indent=2, default=str))
    if not args.no_doc:
        text = (
            f"Measured by `python benchmarks/frontend.py` ({len(rows)} builds, "
            f"{fm.VECTORS} random vectors each; LSB of the output):\n\n{table}\n"
        )
        if refused:
            text += "\nLayers the hardware does not have, refused by the command line:\n\n"
            text += "\n".join(f"- {o.case} ({o.exporter}): {fm.status_line(o)}" for o in refused) + "\n"
        if synth:
            text += (
                "\nSynthesised (GHDL + yosys, `qonnx-spartan synth`) against the estimate: LUT and FF within "
                f"{100 * LUT_FF_TOLERANCE:.0f} %, the rest exact:\n\n{synth_table(synth)}\n"
            )
        write_doc(args.doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
