"""The study's content-addressed store: one result per stage and inputs, written complete or not at all.

A result lives in STORE/<stage>/<key[:2]>/<key>/ (result.json and the stage's files: a model, a build).
The key is a hash of everything the stage's result depends on: its own settings, the keys of the results it
reads, and for hardware stages the library's hardware version.  So a study that was stopped, or lost a
worker, finds every finished stage again; two studies that share a configuration share its work; and a
change to the templates, the op or estimator code or the coefficients makes the hardware stages run again.

An entry is made in a temporary folder under STORE/.tmp/ and renamed into place: a folder rename is atomic
on one file system, so a killed worker leaves at most a temporary folder, never a half-written entry.  On a
cluster the store is a folder every worker and the client can reach (a shared file system).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

RESULT = "result.json"


#: Files that decide hardware: sources, templates, and data (fitted coefficients, measured tables).
HARDWARE_SUFFIXES = (".py", ".json", ".j2", ".vhd")


def hardware_roots() -> list[Path]:
    """The package (ops, estimator, backend, ...), its transforms and its VHDL templates."""
    import qonnx_spartan
    import qonnx_spartan.templates
    import qonnx_spartan.transforms

    return [Path(m.__file__).parent for m in (qonnx_spartan, qonnx_spartan.transforms, qonnx_spartan.templates)]


def tree_digest(roots: list[Path], skip: Path | None = None) -> str:
    """A digest of the hardware files under `roots` (names and contents), leaving out the folder `skip`."""
    digest = hashlib.sha256()
    for root in roots:
        for f in sorted(root.rglob("*")):
            if not f.is_file() or f.suffix not in HARDWARE_SUFFIXES or "__pycache__" in f.parts:
                continue
            if skip is not None and skip in f.parents:
                continue
            digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def hardware_version() -> str:
    """The library's hardware version: the digest of its hardware files, the study runner's own left out
    (it decides no hardware).  Part of the key of every stage that builds or measures hardware."""
    roots = hardware_roots()
    return tree_digest(roots, skip=roots[0] / "study")


#: A node shared by several configurations (the float model, trained once for every bit width) is judged
#: on each one's estimate and search: the second one's reads are named "estimate|1", "search|1", and so on.
ALTERNATIVE = "|"


def content_key(stage: str, inputs: dict) -> str:
    """The key of a stage's result: a hash of the stage's name and its inputs as canonical JSON."""
    text = json.dumps({"stage": stage, "inputs": inputs}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class Store:
    """The store's folder; entries are read by `get` and made by `put`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def get(self, stage: str, key: str) -> dict | None:
        """The stored result, or None when the stage has not finished for these inputs."""
        path = self.entry(stage, key) / RESULT
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, stage: str, key: str, make: Callable[[Path], dict]) -> dict:
        """Run make(folder) -> result in a temporary folder, write result.json beside what it wrote there, and
        rename the folder into place.  If another worker finished the same entry first, keep that one."""
        final = self.entry(stage, key)
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{stage}-{key[:8]}-", dir=self.root / ".tmp"))
        try:
            result = make(work)
            result = {**result, "stored_by": f"{socket.gethostname()}:{os.getpid()}"}
            (work / RESULT).write_text(json.dumps(result, indent=2, default=str) + "\n")
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                work.rename(final)
            except OSError:  # the entry exists: the same inputs were finished elsewhere meanwhile
                if not (final / RESULT).is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return json.loads((final / RESULT).read_text())

    def entries(self) -> dict[str, int]:
        """Finished entries per stage."""
        if not self.root.is_dir():
            return {}
        return {
            d.name: sum(1 for _ in d.glob(f"*/*/{RESULT}"))
            for d in sorted(self.root.iterdir())
            if d.is_dir() and not d.name.startswith(".")
        }
