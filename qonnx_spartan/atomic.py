"""Writing a file complete or not at all: into a hidden temporary name beside it, then renaming."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) then rename over `path`; an interrupted or failed write leaves nothing behind.  The
    temporary name keeps the suffix, so writers that choose a format by it (matplotlib) still can."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
