"""Synthesise the calibration designs and record, per layer, its resource features and yosys's counts.

    python calibration/sweep.py [--builds DIR] [--only N] [-o calibration/yosys_rows.json]
    python calibration/sweep.py --measured calibration/yosys_rows.json   # features changed, hardware not:
                                                   # recorded designs are rebuilt only, new ones synthesised
    python calibration/sweep.py --kind table       # one op's single-op designs only, their rows replaced

The designs (82 MLPs and 36 forecasting Transformers over sizes, bit widths, mixed plans, lanes and
memory styles; then single-op designs of the ops those models do not use) are drawn from fixed seeds and
none of them is a benchmarks/estimator.py configuration.  The hierarchy is kept in synthesis, so each
layer's count is its template's count in isolation.  The rows are what `qonnx-spartan calibrate` fits the
estimator's coefficients to (see docs/estimator.md).  When only the estimator's features change,
`--measured` rebuilds the designs without synthesising them and takes each layer's counts from the rows
already recorded (the flow is deterministic, and each layer's hardware digest is checked against the
recorded one; an export is not the same bit for bit on every machine, and a design that came out
otherwise is synthesised again).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "examples" / "forecasting")]

from brevitas_models import export_config  # noqa: E402
from op_modules import collected  # noqa: E402

from qonnx_spartan.budget import Budget  # noqa: E402
from qonnx_spartan.calibration import build_rows  # noqa: E402
from qonnx_spartan.flow import BuildConfig, build  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

PLAN_MODULES = ("encoder.q_proj", "encoder.k_proj", "encoder.v_proj", "encoder.ffn1", "encoder.ffn2", "embed.proj")


def mlp(sizes: list[int], bits: int, po2: bool, seed: int, lanes: int, style: str) -> tuple:
    """One MLP design as configurations() lists it."""
    name = f"mlp {'-'.join(map(str, sizes))} b{bits}{' po2' if po2 else ''} l{lanes}"
    return name, "mlp", dict(sizes=sizes, bits=bits, po2=po2, seed=seed), style, lanes


def transformer(window, d_model, heads, bits, po2, plan, seed, lanes, style) -> tuple:
    """One forecasting Transformer design as configurations() lists it."""
    params = dict(window=window, d_model=d_model, heads=heads, bits=bits, po2=po2, plan=plan, seed=seed)
    name = f"tf w{window} d{d_model} h{heads} b{bits}{' po2' if po2 else ''}{' mixed' if plan else ''} l{lanes}"
    return name, "tf", params, style, lanes


def heads_of(rng: random.Random, d_model: int) -> int:
    """A head count that divides d_model."""
    return rng.choice([h for h in (1, 2, 4) if d_model % h == 0])


def configurations(seed: int = 2410) -> list[tuple[str, str, dict, str, int]]:
    """(name, kind, parameters, memory style, lanes) of every calibration design.  Each family draws from
    its own seeded generator, in a fixed order (call arguments are drawn left to right), so that adding a
    family leaves the others' designs as they were and their kept builds stay valid."""
    rng = random.Random(seed)
    styles = ("block", "distributed", "auto")
    configs = []
    for i in range(16):
        depth = rng.choice((1, 2, 3))
        sizes = [rng.choice((3, 5, 6, 10, 20, 40))] + [rng.choice((7, 12, 24, 48, 96)) for _ in range(depth)]
        sizes.append(rng.choice((1, 2, 5)))
        configs.append(
            mlp(sizes, rng.randint(2, 8), rng.random() < 0.5, i, rng.choice((1, 1, 2, 3, 5)), rng.choice(styles))
        )
    for i in range(20):
        window, d_model = rng.choice((3, 5, 8, 10, 16)), rng.choice((8, 12, 16, 24, 32))
        heads = heads_of(rng, d_model)
        bits, po2 = rng.randint(3, 8), rng.random() < 0.7
        plan = None
        if rng.random() < 0.4:
            plan = {m: {"weight_bits": rng.randint(3, 8)} for m in rng.sample(PLAN_MODULES, 2)}
        configs.append(
            transformer(window, d_model, heads, bits, po2, plan, i, rng.choice((1, 1, 2, 4)), rng.choice(styles))
        )
    small = random.Random(seed + 1)  # small MLPs, where a few LUTs are a large share
    for i in range(16):
        sizes = [small.choice((2, 4, 6, 9))] + [small.choice((5, 8, 16, 30)) for _ in range(small.choice((1, 2)))]
        sizes.append(small.choice((1, 3, 4)))
        style = ("block", "block", "distributed", "auto")
        configs.append(
            mlp(sizes, small.randint(2, 8), small.random() < 0.5, 100 + i, small.choice((1, 1, 2)), small.choice(style))
        )
    extra = random.Random(seed + 2)  # long windows and block memories, which the designs above cover thinly
    for i in range(8):
        window, d_model = extra.choice((20, 28, 32)), extra.choice((8, 12, 16, 24))
        heads = heads_of(extra, d_model)
        bits, po2 = extra.randint(3, 8), extra.random() < 0.6
        style = ("block", "block", "auto", "distributed")
        configs.append(
            transformer(
                window, d_model, heads, bits, po2, None, 200 + i, extra.choice((1, 2, 2, 4)), extra.choice(style)
            )
        )
    for i in range(8):
        sizes = [extra.choice((6, 12, 24, 40))] + [extra.choice((20, 40, 100)) for _ in range(extra.choice((1, 2)))]
        sizes.append(extra.choice((1, 4, 10)))
        style = ("block", "block", "distributed")
        configs.append(
            mlp(sizes, extra.randint(2, 8), extra.random() < 0.5, 300 + i, extra.choice((1, 1, 2)), extra.choice(style))
        )
    powers = random.Random(seed + 3)  # power-of-two sizes, whose counters and addresses cost less logic
    for i in range(10):
        sizes = [powers.choice((4, 8, 16, 32))] + [powers.choice((8, 16, 32, 64)) for _ in range(powers.choice((1, 2)))]
        sizes.append(powers.choice((1, 2, 4, 8)))
        configs.append(
            mlp(
                sizes,
                powers.randint(2, 8),
                powers.random() < 0.5,
                400 + i,
                powers.choice((1, 1, 2)),
                powers.choice(styles),
            )
        )
    wide = random.Random(seed + 4)  # 4-8 lanes, as the automatic lanes choose on the XC7S15's 20 DSPs
    for i in range(8):
        sizes = [wide.choice((5, 10, 24, 40))] + [wide.choice((24, 40, 72)) for _ in range(wide.choice((1, 2)))]
        sizes.append(wide.choice((2, 5, 12)))
        configs.append(
            mlp(sizes, wide.randint(5, 8), wide.random() < 0.5, 500 + i, wide.choice((4, 6, 8)), wide.choice(styles))
        )
    for i in range(4):
        window, d_model = wide.choice((5, 10, 16)), wide.choice((12, 24, 32))
        heads = heads_of(wide, d_model)
        bits, po2 = wide.randint(5, 8), wide.random() < 0.6
        style = ("block", "auto", "distributed")
        configs.append(
            transformer(window, d_model, heads, bits, po2, None, 600 + i, wide.choice((6, 8)), wide.choice(style))
        )
    many = random.Random(seed + 5)  # 3-8 lanes over MLP sizes: each lane count had a handful of layers
    for i in range(16):
        sizes = [many.choice((4, 8, 12, 20))] + [many.choice((16, 24, 32, 48)) for _ in range(many.choice((1, 2, 3)))]
        sizes.append(many.choice((1, 3, 6)))
        configs.append(
            mlp(sizes, many.randint(3, 8), many.random() < 0.5, 700 + i, many.randint(3, 8), many.choice(styles))
        )
    sixteen = random.Random(seed + 6)  # 10-16 lanes: how far the lanes step goes where products are in LUTs
    for i in range(8):
        sizes = [sixteen.choice((3, 6, 12, 16))]
        sizes += [sixteen.choice((16, 24, 32, 48)) for _ in range(sixteen.choice((1, 2)))]
        sizes.append(sixteen.choice((1, 4, 8)))
        bits, po2, lanes = sixteen.randint(2, 5), sixteen.random() < 0.5, sixteen.randint(10, 16)
        configs.append(mlp(sizes, bits, po2, 800 + i, lanes, sixteen.choice(styles)))
    for i in range(4):
        window, d_model = sixteen.choice((6, 8, 12)), sixteen.choice((16, 24, 32))
        heads = heads_of(sixteen, d_model)
        bits, po2, lanes = sixteen.randint(3, 5), sixteen.random() < 0.6, sixteen.choice((12, 16))
        style = sixteen.choice(("block", "auto", "distributed"))
        configs.append(transformer(window, d_model, heads, bits, po2, None, 900 + i, lanes, style))
    return configs


#: Single-op designs of the ops outside the models above: kind -> Family, from the op test modules.
OP_DESIGNS = collected("CALIBRATION")


def op_configurations(seed: int = 2410) -> list[tuple[str, str, dict, str, int]]:
    """Single-op designs of the ops outside the models above, each op's family from its own generator (in
    the order of their seeds, so that a new op's family leaves the others' builds where they were)."""
    configs = []
    for kind, family in sorted(OP_DESIGNS.items(), key=lambda item: item[1].seed):
        rng = random.Random(seed + family.seed)
        configs += [(name, kind, params, style, 1) for name, params, style in family.draw(rng)]
    return configs


def recorded_counts(path: Path) -> dict[str, dict[str, dict]]:
    """{design: {layer: row}} of a rows file."""
    recorded: dict[str, dict[str, dict]] = {}
    for row in json.loads(path.read_text()):
        recorded.setdefault(row["design"], {})[row["layer"]] = row
    return recorded


def changed_layers(rows: list[dict], recorded: dict[str, dict]) -> set[str] | None:
    """The layers (not the top level) whose hardware digest differs from the recorded one, when the design
    has the recorded layers; None when it does not."""
    if {row["layer"] for row in rows} != set(recorded):
        return None
    return {
        row["layer"]
        for row in rows
        if row["layer"] != "top" and recorded[row["layer"]].get("hardware", row["hardware"]) != row["hardware"]
    }


def hardware_change(rows: list[dict], recorded: dict[str, dict]) -> str | None:
    """Why a rebuilt design is not the recorded one (None when it is): the same layers, each with the
    recorded hardware digest (rows recorded before digests were kept are matched by their layers)."""
    for row in rows:
        old = recorded.get(row["layer"])
        if old is None or old.get("hardware", row["hardware"]) != row["hardware"]:
            return f"layer {row['layer']} differs from the recorded design"
    if len(rows) != len(recorded):
        return f"{len(rows)} layers against {len(recorded)} recorded"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "calibration" / "yosys_rows.json")
    ap.add_argument("--builds", type=Path, default=Path("build/calibration"), help="where the builds are kept")
    ap.add_argument("--only", type=int, help="the first N designs")
    ap.add_argument("--synth-only", help="K/N: synthesise every N-th design from the K-th, write no rows")
    ap.add_argument(
        "--measured", type=Path, help="rows whose counts stand in for synthesis of their designs (features changed)"
    )
    ap.add_argument(
        "--changed-layers",
        action="store_true",
        help="with --measured: synthesise only the layers whose hardware changed (the others' and the top "
        "level's counts as recorded), e.g. after a change to one op's template",
    )
    ap.add_argument(
        "--kind",
        help="only the designs of this kind (e.g. table); their rows replace that kind's in the output, the "
        "other rows are kept",
    )
    args = ap.parse_args(argv)
    recorded = recorded_counts(args.measured) if args.measured else None
    shard = tuple(map(int, args.synth_only.split("/"))) if args.synth_only else None
    budget = Budget(device="xc7s50")  # room for every design: the counts are what is recorded
    rows = []
    for k, (name, kind, params, style, lanes) in enumerate((configurations() + op_configurations())[: args.only]):
        out = args.builds / f"{k:02d}"
        if (shard and k % shard[1] != shard[0]) or (args.kind and kind != args.kind):
            continue
        known = recorded is not None and name in recorded
        kept = out / ("model_int.onnx" if known else "report/synth.json")
        if not kept.is_file():  # resumable: a kept build and synthesis are reused
            with tempfile.TemporaryDirectory() as tmp:
                if kind in OP_DESIGNS:  # a lowered single-op model
                    onnx_path = Path(tmp) / "lowered.onnx"
                    OP_DESIGNS[kind].make(**params).save(str(onnx_path))
                    start = "memory_style"
                else:
                    onnx_path, _ = export_config(kind, params, Path(tmp) / "model.onnx")
                    start = None
                build(
                    BuildConfig(
                        model=onnx_path,
                        output_dir=out,
                        memory_style=style,
                        budget=budget,
                        lanes=lanes,
                        start_step=start,
                    )
                )
            if not known:
                seconds = synthesise(out)["seconds"]
                print(f"{k + 1:3d} {name:44s} {style:12s} synthesised in {seconds:5.1f} s", flush=True)
        if shard:
            continue
        if known:
            new = build_rows(out, measured={layer: row["measured"] for layer, row in recorded[name].items()})
            change = hardware_change(new, recorded[name])
            changed = changed_layers(new, recorded[name])
            if change is not None and changed and args.changed_layers:
                # the hierarchy is kept: a layer's count is its own, and the top level sees the layers' ports
                report = synthesise(out, layers=changed)
                measured = {layer: row["measured"] for layer, row in recorded[name].items()}
                measured.update({layer: report["layers"][layer] for layer in changed})
                print(f"{k + 1:3d} {name:44s} {', '.join(sorted(changed))} synthesised again in "
                      f"{report['seconds']:5.1f} s", flush=True)
                new = build_rows(out, measured=measured)
            elif change is not None:
                # an export is not bit-for-bit the same on every machine (torch's float reductions follow
                # the CPU): a design whose quantisation came out otherwise is synthesised again
                seconds = synthesise(out)["seconds"]
                print(f"{k + 1:3d} {name:44s} {change}: synthesised again in {seconds:5.1f} s", flush=True)
                new = build_rows(out)
        else:
            new = build_rows(out)
        rows += [{"design": name, **row} for row in new]
    if shard:
        return 0
    if args.kind:
        kinds = {name: kind for name, kind, *_ in configurations() + op_configurations()}
        others = [r for r in json.loads(args.output.read_text()) if kinds.get(r["design"]) != args.kind]
        rows = others + rows
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} rows -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
