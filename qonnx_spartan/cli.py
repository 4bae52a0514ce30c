"""The `qonnx-spartan` command: a thin layer over the flow, the estimator and the simulator.

Bad input is reported as one line naming the file, node or field, with a non-zero exit and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qonnx_spartan.errors import SpartanError

EXIT_USER_ERROR = 2
EXIT_MISMATCH = 1
EXIT_INTERNAL = 3
PLAN_HELP = "bit widths and memory styles per module or node (YAML or JSON; see docs/architecture.md)"
ESTIMATOR_HELP = "LUT/FF coefficients from `qonnx-spartan calibrate` (default: the budget's, else the yosys fit)"


def cmd_build(args) -> int:
    from qonnx_spartan import embedded
    from qonnx_spartan.flow import BuildConfig, build

    if args.model is None:
        args.model = embedded.model_path()
        print(f"build: no model given, using the embedded example ({embedded.info()['description']})", file=sys.stderr)
    cfg = BuildConfig(
        model=args.model,
        output_dir=args.output,
        budget=args.budget,
        plan=args.plan,
        estimator=args.estimator,
        memory_style=args.memory_style,
        lanes=args.lanes,
        part=args.part,
    )
    build(cfg, progress=lambda step: print(f"build: {step}", file=sys.stderr))
    report = json.loads((args.output / "report" / "estimate.json").read_text())
    t = report["total"]
    print(
        f"built {args.output}: LUT {t['LUT']}, LUTRAM {t['LUTRAM']}, FF {t['FF']}, BRAM18 {t['BRAM18']}, "
        f"DSP {t['DSP']} (estimate), {report['cycles']} cycles per inference on {report['device']}"
    )
    return 0


def cmd_estimate(args) -> int:
    from qonnx_spartan.flow import BuildConfig, estimate_only

    cfg = BuildConfig(
        model=args.model,
        output_dir=Path("."),
        budget=args.budget,
        plan=args.plan,
        estimator=args.estimator,
        memory_style=args.memory_style,
        lanes=args.lanes,
    )
    report = estimate_only(cfg)
    budget = cfg.resolved_budget()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    limits = report["budget"]
    for r, used in report["total"].items():
        print(f"{r:7s} {used:7d} / {limits[r]:7d}")
    print(f"cycles  {report['cycles']:7d}  ({report['latency_us']:.2f} us at {budget.clock_mhz:g} MHz)")
    return 0


def cmd_simulate(args) -> int:
    from qonnx_spartan import embedded
    from qonnx_spartan.simulation import load_inputs, simulate_build, write_outputs

    if args.inputs is None:
        args.inputs = embedded.inputs_path()
        print("simulate: no inputs given, using the embedded example's test windows", file=sys.stderr)
    inputs = load_inputs(args.inputs)
    report = simulate_build(
        args.build_dir,
        inputs,
        source=str(args.inputs),
        progress=lambda done, total: print(f"simulate: {done} of {total} vectors", file=sys.stderr),
        simulator=args.simulator,
        status=lambda message: print(f"simulate: {message}", file=sys.stderr),
        output=args.output,
    )
    write_outputs(report, args.build_dir, args.output)
    verdict = "bit-exact" if report.bit_exact else f"{report.mismatches} MISMATCHED"
    print(
        f"simulate: {report.vectors} vectors in {report.simulator}, {verdict} against the integer reference, "
        f"{report.cycles_per_inference} cycles per inference"
    )
    return 0 if report.bit_exact else EXIT_MISMATCH


def cmd_synth(args) -> int:
    from qonnx_spartan.synth import synthesise

    report = synthesise(args.build_dir, progress=lambda s: print(f"synth: {s}", file=sys.stderr))
    estimate_path = args.build_dir / "report" / "estimate.json"
    estimate = json.loads(estimate_path.read_text())["total"] if estimate_path.is_file() else {}
    print(f"{'':7s} {'synth':>7s} {'estimate':>9s}")
    for r, v in report["total"].items():
        print(f"{r:7s} {v:7d} {estimate.get(r, 0):9d}")
    print(f"synthesised in {report['seconds']} s; report in {args.build_dir / 'report' / 'synth.json'}")
    return 0


def cmd_calibrate(args) -> int:
    from qonnx_spartan.atomic import write_atomically
    from qonnx_spartan.calibration import calibrate, design_totals
    from qonnx_spartan.coefficients import Coefficients

    if not args.builds and not args.rows:
        raise SpartanError("calibrate: give synthesised build folders or --rows files")
    keep = Coefficients.load(args.keep) if args.keep else None
    coefficients, rows = calibrate(args.builds, args.vivado, args.rows, keep)
    before, after = (design_totals(rows, c) for c in (Coefficients.default(), coefficients))
    print(f"{'design':40s} {'measured':>17s} {'packaged':>17s} {'fitted':>17s}   (LUT / FF)")
    for design, fit in after.items():
        m, b, a = fit["measured"], before[design]["estimate"], fit["estimate"]
        print(f"{design[-40:]:40s} {m['LUT']:8d} {m['FF']:8d} {b['LUT']:8d} {b['FF']:8d} {a['LUT']:8d} {a['FF']:8d}")
    write_atomically(args.output, coefficients.save)
    print(f"calibrate: {len(rows)} layers of {len(after)} designs ({coefficients.tool}) -> {args.output}")
    return 0


def cmd_search(args) -> int:
    from qonnx_spartan.budget import Budget, load_budget
    from qonnx_spartan.search import parse_bits, search, write_outputs
    from qonnx_spartan.search_plot import available
    from qonnx_spartan.simulation import load_inputs

    bits = parse_bits(args.bits)
    budget = (load_budget(args.budget) if args.budget is not None else Budget()).with_estimator(args.estimator)
    x, y = load_inputs(args.calib), load_inputs(args.reference)
    result = search(
        args.model,
        budget,
        x,
        y,
        bits,
        args.points,
        progress=lambda m: print(f"search: {m}", file=sys.stderr),
        sources=(str(args.calib), str(args.reference)),
    )
    written = write_outputs(result, args.output)
    if not available():
        print("search: no plot: matplotlib is not installed (pip install 'qonnx-spartan[plot]')", file=sys.stderr)
    chosen = result.to_json()["chosen"]
    used = ", ".join(f"{r} {v}" for r, v in chosen["resources"].items())
    print(f"search: RMS error {chosen['rms_lsb']:.3g} output LSBs, {used} (estimate), {chosen['cycles']} cycles")
    print(f"search: {len(result.search.cache)} plans in {result.seconds:.1f} s -> {', '.join(map(str, written))}")
    return 0


def cmd_study(args) -> int:
    from qonnx_spartan.study.runner import connect, prepare_output, run_study, store_root
    from qonnx_spartan.study.spec import load_study

    if args.scheduler and args.workers:
        raise SpartanError("study: give --scheduler (a running cluster) or --workers (a local one), not both")
    study = load_study(args.study)
    if args.stages:
        study = only_stages(study, args.stages)
    prepare_output(args.output, study, args.resume)  # before starting a cluster
    store = store_root(study, args.store)
    client, cluster = connect(args.scheduler, args.workers)
    try:
        doc = run_study(study, args.output, store, client, resume=args.resume)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    by = doc["tasks_by_status"]
    counts = ", ".join(f"{k} {sum(v.values())}" for k, v in by.items() if v)
    rows, tasks, seconds = doc["rows"], doc["tasks"], doc["seconds"]
    print(f"study {study.name}: {rows} rows, {tasks} tasks ({counts}) in {seconds} s -> {args.output}")
    for line in doc["internal_errors"][:3]:
        print(f"study: internal error in {line}", file=sys.stderr)
    return EXIT_INTERNAL if doc["internal_errors"] else 0


def only_stages(study, text: str):
    """The study with some of its stages: the cheap ones first, the rest later from the same store."""
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in study.stages]
    if unknown or not stages:
        raise SpartanError(f"--stages: '{text}' is not a list of the study's stages ({', '.join(study.stages)})")
    subset = study.model_copy(update={"stages": [s for s in study.stages if s in stages]})
    for field, message in subset.problems():
        raise SpartanError(f"--stages: {field}: {message}")
    return subset


def cmd_devices(args) -> int:
    from qonnx_spartan.devices import DEFAULT_DEVICE, DEVICES

    print(f"{'device':9s} {'part':17s} {'LUT':>7s} {'LUTRAM':>7s} {'FF':>7s} {'BRAM18':>7s} {'DSP':>5s}")
    for d in DEVICES.values():
        mark = " (default)" if d.name == DEFAULT_DEVICE else ""
        print(f"{d.name:9s} {d.part:17s} {d.LUT:7d} {d.LUTRAM:7d} {d.FF:7d} {d.BRAM18:7d} {d.DSP:5d}{mark}")
    return 0


def lanes_arg(text: str):
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"lanes must be a positive number or auto, not '{text}'")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number is needed, not '{text}'")
    return int(text)


def parser() -> argparse.ArgumentParser:
    from qonnx_spartan.simulation import SIMULATORS
    from qonnx_spartan.transforms.memory_style import MEMORY_CHOICES

    p = argparse.ArgumentParser(prog="qonnx-spartan", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="lower, estimate and generate VHDL for a QONNX model")
    b.add_argument("model", type=Path, nargs="?", help="QONNX model (default: the embedded example)")
    b.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    b.add_argument("--budget", type=Path, help="budget file (YAML or JSON)")
    b.add_argument("--plan", type=Path, help=PLAN_HELP)
    b.add_argument("--estimator", type=Path, help=ESTIMATOR_HELP)
    b.add_argument("--memory-style", choices=MEMORY_CHOICES, default="auto")
    b.add_argument(
        "--lanes",
        type=lanes_arg,
        default="auto",
        help="MAC lanes per linear layer and attention product: a number, or auto (as many as the budget allows)",
    )
    b.add_argument("--part", help="Vivado part for OUT/vivado/build.tcl (default: the budget device's)")
    b.set_defaults(run=cmd_build)

    e = sub.add_parser("estimate", help="resources and cycles of a model without building it")
    e.add_argument("model", type=Path)
    e.add_argument("--budget", type=Path)
    e.add_argument("--plan", type=Path, help=PLAN_HELP)
    e.add_argument("--estimator", type=Path, help=ESTIMATOR_HELP)
    e.add_argument("--memory-style", choices=MEMORY_CHOICES, default="auto")
    e.add_argument("--lanes", type=lanes_arg, default="auto", help="as for build")
    e.add_argument("--json", action="store_true", help="print the estimate.json document")
    e.set_defaults(run=cmd_estimate)

    s = sub.add_parser("simulate", help="run a built design, bit-exact against the integer reference")
    s.add_argument("build_dir", type=Path)
    s.add_argument(
        "--simulator",
        choices=SIMULATORS,
        help="verilator (compiled once per build, fast) or ghdl (the VHDL itself); default: verilator when installed",
    )
    s.add_argument("--inputs", type=Path, help="float inputs (.npy), batch first (default: the embedded example's)")
    s.add_argument(
        "--output",
        type=Path,
        help="where to write the dequantised outputs: .npy, or .npz with output_0, output_1, ... "
        "(required for a model with several outputs)",
    )
    s.set_defaults(run=cmd_simulate)

    y = sub.add_parser("synth", help="GHDL synthesis + yosys synth_xilinx of a built design, per layer")
    y.add_argument("build_dir", type=Path)
    y.set_defaults(run=cmd_synth)

    c = sub.add_parser("calibrate", help="fit the estimator's LUT/FF coefficients to synthesised builds")
    c.add_argument("builds", type=Path, nargs="*", help="builds synthesised with `synth` (or with Vivado)")
    c.add_argument("--vivado", action="store_true", help="read BUILD/vivado/utilization_hierarchical.rpt")
    c.add_argument("--rows", type=Path, action="append", default=[], help="stored rows (calibration/*.json)")
    c.add_argument(
        "--keep",
        type=Path,
        help="coefficients whose groups are kept as they are: only the groups they lack are fitted (a new op)",
    )
    c.add_argument("-o", "--output", type=Path, required=True, help="coefficients file to write (JSON)")
    c.set_defaults(run=cmd_calibrate)

    q = sub.add_parser("search", help="the mixed-precision plan of least error that fits a budget (docs/search.md)")
    q.add_argument("model", type=Path, help="QONNX model")
    q.add_argument("--budget", type=Path, help="budget file (YAML or JSON; default: the whole default device)")
    q.add_argument("--estimator", type=Path, help=ESTIMATOR_HELP)
    q.add_argument("--calib", type=Path, required=True, help="float calibration inputs (.npy), batch first")
    q.add_argument("--reference", type=Path, required=True, help="reference outputs for them (.npy), batch first")
    q.add_argument("-o", "--output", type=Path, required=True, help="plan to write (JSON; also .pareto.json/.png)")
    q.add_argument("--bits", default="4,6,8", help="the widths each layer may take (default 4,6,8)")
    q.add_argument("--points", type=positive_int, default=8, help="budgets on the Pareto front (default 8)")
    q.set_defaults(run=cmd_search)

    t = sub.add_parser("study", help="run a design-space study on Dask (docs/study.md)")
    t.add_argument("study", type=Path, help="study file (YAML or JSON)")
    t.add_argument("-o", "--output", type=Path, required=True, help="folder for the table, plots and study.json")
    t.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    t.add_argument("--workers", type=positive_int, help="worker processes of a local cluster (default: one per core)")
    t.add_argument("--resume", action="store_true", help="continue the study in OUTPUT (finished stages are reused)")
    t.add_argument("--stages", help="run only these of the study's stages, e.g. export,estimate,search")
    t.add_argument(
        "--store",
        type=Path,
        help="the content-addressed store (default: the study's, else "
        "$QONNX_SPARTAN_STORE, else ~/.cache/qonnx-spartan/store)",
    )
    t.set_defaults(run=cmd_study)

    d = sub.add_parser("devices", help="list the device profiles")
    d.set_defaults(run=cmd_devices)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SpartanError as e:
        print(f"qonnx-spartan: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("qonnx-spartan: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        print(
            f"qonnx-spartan: internal error: {e.__class__.__name__}: {e} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
