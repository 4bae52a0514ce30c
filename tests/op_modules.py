"""The per-op test modules (tests/test_op_<name>.py) as the tests that cover every registered op read
them, so that a new op adds its pieces to its own test module only:

- EXTREMES: {name: Extreme(make, reaches_acc_range)}, single-op designs with extreme weights and constants
  (tests/test_overflow.py drives them with extreme inputs);
- RECOMPUTE: {op class or engine: fn(op, operands) -> (outputs, {register: values held})}, the op's outputs
  recomputed in Python integers as the hardware takes each step, asserting the widths the op declares;
- named_example(tmp_path) -> (exported model, least identifiers declared): a Brevitas model whose nodes
  tests/test_names.py renames hostile;
- CALIBRATION: {kind: Family(seed, draw, make)}, the op's single-op calibration designs for an op the
  calibration's models do not use (calibration/sweep.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Extreme:
    """A design builder, and whether its extreme inputs reach both ends of its last op's declared
    accumulator range (a product of x with a function of x cannot reach every corner of the two types)."""

    make: Callable
    reaches_acc_range: bool = False


@dataclass(frozen=True)
class Family:
    """An op's single-op calibration designs: `draw(random.Random(base seed + seed))` lists (name, parameters,
    memory style), `make(**parameters)` builds the lowered model of one."""

    seed: int
    draw: Callable
    make: Callable


def op_test_modules() -> list:
    return [import_module(path.stem) for path in sorted(Path(__file__).parent.glob("test_op_*.py"))]


def collected(attribute: str) -> dict:
    """The union of the modules' dictionaries `attribute`; a key given twice is an error."""
    merged: dict = {}
    for module in op_test_modules():
        for key, value in getattr(module, attribute, {}).items():
            assert key not in merged, f"{key} in two op test modules ({attribute})"
            merged[key] = value
    return merged


def named_examples() -> dict[str, Callable]:
    """The modules' named_example functions by module."""
    return {m.__name__: m.named_example for m in op_test_modules() if hasattr(m, "named_example")}
