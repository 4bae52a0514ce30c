"""Running a study on Dask (dask.distributed): every stage of every configuration is a task whose inputs are
the futures of the stages it reads, submitted to a scheduler given by address or to a LocalCluster.

Work is kept in the content-addressed store, not in Dask: a worker that is lost takes only its running task
with it (the scheduler runs it again elsewhere, and what it had finished is in the store), and a study run
again (`--resume`) or another study with configurations in common reads the stored results instead of
computing them.  OUT gets the table (CSV, Parquet), the plots and study.json (what ran, where it is kept).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from qonnx_spartan.atomic import write_atomically
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.study import plots, table
from qonnx_spartan.study.graph import build_graph
from qonnx_spartan.study.spec import Study
from qonnx_spartan.study.stages import run_stage
from qonnx_spartan.study.store import ALTERNATIVE, Store, hardware_version

SUMMARY = "study.json"
DEFAULT_STORE = Path.home() / ".cache" / "qonnx-spartan" / "store"
#: While a study runs, its table.csv is rewritten this often (rows not finished say "pending").
PARTIAL_TABLE_SECONDS = 30


def store_root(study: Study, option: Path | None) -> Path:
    """--store, else the study file's `store`, else $QONNX_SPARTAN_STORE, else ~/.cache/qonnx-spartan/store."""
    chosen = option or study.store or os.environ.get("QONNX_SPARTAN_STORE") or DEFAULT_STORE
    return Path(chosen).resolve()


def connect(scheduler: str | None, workers: int | None):
    """A client of the scheduler at `scheduler`, or of a new LocalCluster of `workers` single-threaded worker
    processes (one per core by default); (client, cluster or None)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as e:
            raise SpartanError(
                f"--scheduler {scheduler}: no Dask scheduler answers there ({e.__class__.__name__})"
            ) from None
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,  # a stage runs its own processes (GHDL, yosys) and threads
        processes=True,
        memory_limit=0,  # training and synthesis peak briefly; a nanny killing them would only repeat the work
        dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server on a free port of this machine only
        silence_logs=logging.ERROR,  # the nannies' notes on shutting workers down are not the study's news
    )
    return Client(cluster), cluster


def prepare_output(out: Path, study: Study, resume: bool) -> None:
    """OUT is new, or holds this study and --resume was given: never two studies' tables in one folder."""
    summary = out / SUMMARY
    if summary.is_file():
        name = json.loads(summary.read_text()).get("name")
        if name != study.name:
            raise SpartanError(f"{out}: holds study '{name}', not '{study.name}'; choose another folder")
        if not resume:
            raise SpartanError(f"{out}: holds study '{name}' already; --resume continues it, or choose another folder")
    elif out.exists() and any(out.iterdir()):
        raise SpartanError(f"{out}: exists and is not a study's folder; choose another folder")
    out.mkdir(parents=True, exist_ok=True)


def write_summary(out: Path, doc: dict) -> None:
    write_atomically(out / SUMMARY, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"))


def run_study(
    study: Study,
    out: Path,
    store: Path,
    client,
    resume: bool = False,
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict:
    """Run every stage of the study on the client's cluster; write OUT and return study.json's contents."""
    from distributed import as_completed

    prepare_output(out, study, resume)
    started = time.perf_counter()
    hardware = hardware_version()
    nodes, rows = build_graph(study, hardware)
    doc = {
        "name": study.name,
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "store": str(store),
        "hardware_version": hardware,
        "study": study.model_dump(mode="json"),
    }
    write_summary(out, doc)
    spec = study.model_dump(mode="json")
    futures, ids = {}, {}
    for (stage, key), node in nodes.items():
        up = {s: futures[(s.partition(ALTERNATIVE)[0], k)] for s, k in node.reads.items()}
        future = client.submit(
            run_stage, stage, str(store), key, spec, node.config, node.seed, up, key=f"{stage}-{key}", pure=False
        )
        futures[(stage, key)] = future
        ids[future.key] = (stage, key)
    say(f"study {study.name}: {len(rows)} rows, {len(futures)} tasks on {describe(client)}; store {store}")
    results, failures, done = {}, {}, 0

    def table_rows() -> list[dict]:
        return [
            table.row(r["config"], r["seed"], {s: results.get((s, k)) for s, k in r["keys"].items()}, study.stages)
            for r in rows
        ]

    written = time.monotonic()
    try:
        for future in as_completed(list(futures.values())):
            done += 1
            node_id = ids[future.key]
            if future.status == "error":
                exc = future.exception()
                failures[node_id] = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
                results[node_id] = {"error": f"internal: {failures[node_id]}"}
            else:
                results[node_id] = future.result()
            node = nodes[node_id]
            say(f"study: [{done}/{len(futures)}] {node.stage} {node.label}: {table.status(results[node_id])[:100]}")
            if time.monotonic() - written > PARTIAL_TABLE_SECONDS:  # a study stopped early leaves what it has
                table.write_csv(table_rows(), out / "table.csv")
                written = time.monotonic()
    except KeyboardInterrupt:  # what finished is in the store; the table and study.json say how far it got
        table.write_csv(table_rows(), out / "table.csv")
        write_summary(out, doc | {"status": "interrupted", "seconds": round(time.perf_counter() - started, 1)})
        raise
    final = table_rows()
    table.write_csv(final, out / "table.csv")
    table.write_parquet(final, out / "table.parquet")
    config_keys = list(dict.fromkeys(k for c in study.configurations() for k in c))
    plotted = plots.write_plots(final, study.estimate.memory_styles, config_keys, study.budget.device, out / "plots")
    counts = {
        "computed": dict(Counter(s for (s, _), r in results.items() if table.status(r) == "computed")),
        "reused": dict(Counter(s for (s, _), r in results.items() if table.status(r) == "reused")),
        "skipped": dict(Counter(s for (s, _), r in results.items() if table.status(r).startswith("skipped"))),
        "errors": dict(Counter(s for (s, _), r in results.items() if table.status(r).startswith("error"))),
    }
    doc |= {
        "status": "finished" if not failures else "finished with internal errors",
        "seconds": round(time.perf_counter() - started, 1),
        "rows": len(final),
        "tasks": len(futures),
        "tasks_by_status": counts,
        "internal_errors": [f"{s} {k[:8]}: {m}" for (s, k), m in failures.items()],
        "store_entries": Store(store).entries(),
        "outputs": ["table.csv", "table.parquet", *(str(p.relative_to(out)) for p in plotted)],
    }
    write_summary(out, doc)
    return doc


def describe(client) -> str:
    info = client.scheduler_info()
    workers = len(info.get("workers", {}))
    return f"{info.get('address', 'a scheduler')} ({workers} workers)"
