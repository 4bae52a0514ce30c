"""A study on a real Dask cluster: a scheduler and two worker processes started with the `dask` command line
on 127.0.0.1, one worker killed in the middle of the study; every row still comes, and a resumed study
redoes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qonnx_spartan.study.table import read_csv

REPO = Path(__file__).parents[1]
SCRIPTS = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
BOUND = 420  # seconds for the whole study (it takes about a minute here)


def study_file(tmp_path: Path) -> Path:
    """The estimate and build stages of six configurations of the example forecaster."""
    doc = {
        "name": "cluster-test",
        "model": {
            "paths": [str(REPO / "examples" / "forecasting")],
            "build": "model:build_model",
            "params": {"features": 3, "heads": 1, "po2": True},
        },
        "data": {"load": "data:make_dataset"},
        "grid": {"window": [6], "d_model": [8, 16], "bits": [4, 6, 8]},
        "stages": ["export", "estimate", "build"],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPTS / "dask"), *args], stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(what: str, ready, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {seconds} s")
        time.sleep(0.2)


def entries(store: Path) -> int:
    return sum(1 for _ in store.glob("*/*/*/result.json"))


def stored_by(store: Path) -> list[int]:
    """The process id of the worker that stored each entry."""
    return [int(json.loads(f.read_text())["stored_by"].rsplit(":", 1)[1]) for f in store.glob("*/*/*/result.json")]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler on a free loopback port and two single-threaded workers without nannies (a killed worker
    stays dead); yields (address, {name: process})."""
    pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    procs = [
        start(
            "scheduler",
            "--host",
            LOOPBACK,
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
            log=tmp_path / "scheduler.log",
        )
    ]
    workers = {}
    try:
        wait_for("the scheduler", sched_file.is_file)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith(f"tcp://{LOOPBACK}:")
        for name in ("w1", "w2"):
            workers[name] = start(
                "worker",
                "--scheduler-file",
                str(sched_file),
                "--host",
                LOOPBACK,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                name,
                log=tmp_path / f"{name}.log",
            )
            procs.append(workers[name])
        from distributed import Client

        with Client(address, timeout="30s") as client:
            wait_for("two workers", lambda: len(client.scheduler_info()["workers"]) == 2)
        yield address, workers
    finally:
        for p in procs:  # only the processes this fixture started, by their own process group
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def study_command(path: Path, out: Path, store: Path, address: str, *more: str) -> list[str]:
    return [
        str(SCRIPTS / "qonnx-spartan"),
        "study",
        str(path),
        "-o",
        str(out),
        "--store",
        str(store),
        "--scheduler",
        address,
        *more,
    ]


@pytest.mark.brevitas
def test_a_study_survives_a_lost_worker_and_resumes_without_redoing_work(tmp_path, cluster, brevitas):
    address, workers = cluster
    path, out, store = study_file(tmp_path), tmp_path / "out", tmp_path / "store"
    started = time.monotonic()
    run = subprocess.Popen(
        study_command(path, out, store, address), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # kill worker 1 once it has stored results, and before the study is done (18 stages in all)
        w1 = workers["w1"].pid
        wait_for("worker 1's first result", lambda: w1 in stored_by(store) or run.poll() is not None, seconds=BOUND)
        at_kill = entries(store)
        workers["w1"].send_signal(signal.SIGKILL)
        workers["w1"].wait(timeout=20)
        stdout, stderr = run.communicate(timeout=BOUND)
    finally:
        if run.poll() is None:
            run.kill()
    assert 1 <= at_kill < 18, f"the worker was killed after {at_kill} of 18 stages: not in the middle"
    assert run.returncode == 0, stderr[-3000:]
    first_seconds = time.monotonic() - started

    rows = read_csv(out / "table.csv")
    assert len(rows) == 6
    assert {(r["d_model"], r["bits"]) for r in rows} == {(d, b) for d in (8, 16) for b in (4, 6, 8)}
    for r in rows:
        # "reused": the killed worker stored the result but died before it reached the scheduler, which then
        # gave the task to the other worker, which found it in the store
        assert {r["export_status"], r["estimate_status"], r["build_status"]} <= {"computed", "reused"}, r
        assert r["build_LUT"] > 0 and r["cycles"] > 0 and r["verdict"].startswith("fits")
    # a killed worker leaves no half-written entry: every entry folder has its result
    folders = [p for p in store.glob("*/*/*") if p.is_dir() and not p.parts[-3].startswith(".")]
    assert len(folders) == entries(store) == 18
    doc = json.loads((out / "study.json").read_text())
    done = doc["tasks_by_status"]
    assert doc["status"] == "finished" and sum(done["computed"].values()) + sum(done["reused"].values()) == 18
    by = stored_by(store)
    assert set(by) == {w1, workers["w2"].pid}  # both workers stored results: w1 before it died, w2 the rest
    assert by.count(w1) <= at_kill

    mtimes = {f: (f / "result.json").stat().st_mtime_ns for f in folders}
    resumed = subprocess.run(
        study_command(path, out, store, address, "--resume"), capture_output=True, text=True, timeout=BOUND
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    doc = json.loads((out / "study.json").read_text())
    assert doc["tasks_by_status"]["computed"] == {} and sum(doc["tasks_by_status"]["reused"].values()) == 18
    assert {f: (f / "result.json").stat().st_mtime_ns for f in folders} == mtimes  # nothing rewritten
    assert read_csv(out / "table.csv") == [{**r, **{k: "reused" for k in r if k.endswith("_status")}} for r in rows]
    print(f"\nstudy of 6 configurations on 2 workers, one killed: {first_seconds:.0f} s")


def test_a_second_study_in_the_same_folder_needs_resume(tmp_path, capsys):
    from cli_errors import cli_error

    out = tmp_path / "out"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"name": "cluster-test"}))
    line = cli_error(capsys, "study", study_file(tmp_path), "-o", out, "--workers", 1)
    assert "holds study 'cluster-test' already; --resume continues it" in line
