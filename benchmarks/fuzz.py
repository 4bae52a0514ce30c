"""Fuzz the whole flow: random small Brevitas models, built and simulated in GHDL bit for bit against the
integer reference.

    python benchmarks/fuzz.py [--count N] [--seed S] [--start I] [--json out.json]
    python benchmarks/fuzz.py --damaged N [--seed S]

Model i of seed S is drawn from numpy's generator seeded (S, i) by tests/fuzz_models.py (the generator the
CI fuzz test uses), so `--start I --count 1` reruns one.  Prints a line per model, then the bit-exact
count, every mismatch, refusal and crash with its configuration, the worst distance of the integer
reference to the exported graph per kind, and the time.

--damaged N instead builds N randomly damaged copies of a small exported MLP with the CLI (flipped bytes,
NaN, infinite or huge weights; tests/test_bad_inputs.py runs 30): each must build, or fail with exit 2 and
one line; anything else is counted as a crash and printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "examples" / "forecasting")]

from fuzz_models import brevitas_bound, build_damaged, draw_case, draw_damage, numpy_chooser, run_case  # noqa: E402

from qonnx_spartan.errors import SpartanError  # noqa: E402


def case_of(seed: int, index: int):
    return draw_case(numpy_chooser(np.random.default_rng([seed, index])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="models to run (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the model generator (default 0)")
    ap.add_argument("--start", type=int, default=0, help="index of the first model (default 0)")
    ap.add_argument("--json", type=Path, help="write one row per model as JSON")
    ap.add_argument("--damaged", type=int, metavar="N", help="build N damaged model files instead")
    args = ap.parse_args(argv)
    if args.damaged:
        return fuzz_damaged(args.damaged, args.seed)

    rows, outcomes, worst = [], Counter(), {}
    started = time.perf_counter()
    print(f"{'#':>5s} {'outcome':9s} {'layers':>6s} {'LSB':>4s} {'s':>5s}  configuration", flush=True)
    for index in range(args.start, args.start + args.count):
        case = case_of(args.seed, index)
        row = {"index": index, "case": case.label(), "kind": case.kind}
        try:
            with tempfile.TemporaryDirectory(prefix="qs_fuzz_") as tmp:
                result = run_case(case, Path(tmp))
        except SpartanError as e:  # refused: a valid small model should build, so this is reported too
            row.update(outcome="refused", detail=str(e))
        except Exception as e:  # a crash is a bug
            row.update(outcome="crashed", detail=f"{e.__class__.__name__}: {e}", trace=traceback.format_exc())
        else:
            bound = brevitas_bound(case)
            outcome = "exact" if result.bit_exact else "MISMATCH"
            if result.bit_exact and bound is not None and result.brevitas_lsb > bound:
                outcome = "far"  # bit-exact hardware, but the reference is further from Brevitas than tested
            row.update(
                outcome=outcome,
                vectors=result.vectors,
                mismatches=result.mismatches,
                brevitas_lsb=result.brevitas_lsb,
                layers=result.layers,
                seconds=round(result.seconds, 2),
            )
            key = f"{case.kind} {'po2' if case.params['po2'] else 'float'}"
            worst[key] = max(worst.get(key, 0.0), result.brevitas_lsb)
        outcomes[row["outcome"]] += 1
        rows.append(row)
        print(
            f"{index:5d} {row['outcome']:9s} {row.get('layers', 0):6d} {row.get('brevitas_lsb', 0):4g} "
            f"{row.get('seconds', 0):5.1f}  {case.label()}" + (f"\n      {row['detail']}" if "detail" in row else ""),
            flush=True,
        )
    elapsed = time.perf_counter() - started

    kinds = Counter(r["kind"] for r in rows)
    print(f"\n{len(rows)} models ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) in {elapsed:.0f} s")
    print(f"bit-exact in GHDL: {outcomes['exact'] + outcomes['far']} of {len(rows)}")
    for outcome in ("MISMATCH", "refused", "crashed", "far"):
        bad = [r for r in rows if r["outcome"] == outcome]
        if bad:
            print(f"{outcome}: {len(bad)}")
            for r in bad:
                print(f"  #{r['index']} {r['case']}: {r.get('detail', '')}{r.get('mismatches', '')}")
    print("worst distance of the reference to Brevitas (LSB): " + ", ".join(f"{k} {v:g}" for k, v in worst.items()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if outcomes["exact"] + outcomes["far"] == len(rows) else 1


def fuzz_damaged(count: int, seed: int) -> int:
    from brevitas_models import export, make_mlp

    outcomes, crashes = Counter(), []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qs_damage_") as tmp:
        original = export(make_mlp([4, 6, 2], 4), Path(tmp) / "mlp.onnx", (1, 4)).read_bytes()
        for index in range(count):
            steps = draw_damage(numpy_chooser(np.random.default_rng([seed, index])))
            work = Path(tempfile.mkdtemp(dir=tmp))
            code, stderr = build_damaged(original, steps, work)
            lines = [line for line in stderr.splitlines() if line.startswith("qonnx-spartan:")]
            if code == 0 and not lines:
                outcomes["built"] += 1
            elif code == 2 and len(lines) == 1 and "Traceback" not in stderr and not (work / "out").exists():
                outcomes["refused in one line"] += 1
            else:
                outcomes["crashed"] += 1
                crashes.append((index, steps, code, lines[-1:] or stderr.strip().splitlines()[-1:]))
    print(
        f"{count} damaged models in {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{n} {k}" for k, n in outcomes.items())
    )
    for index, steps, code, line in crashes:
        print(f"  #{index} {steps}: exit {code} {line}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
