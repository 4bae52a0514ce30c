"""Overflow: extreme inputs (all minimum, all maximum, alternating) through designs whose weights,
multipliers, biases and offsets are extreme too, for every registered op.  Each op's test module gives its
designs (EXTREMES) and its exact recomputation (RECOMPUTE; tests/op_modules.py).  For each design:

(a) every node's integer reference equals the recomputation in plain Python integers (no int64 to wrap),
(b) every value the hardware holds (partial sums, products, row sums, reciprocals) fits the width the op
    declares, and where the design says so the extreme inputs reach the declared accumulator range (it is
    exact, not just safe),
(c) GHDL equals the reference bit for bit.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from exact import extremes, half_even, shift_rounded
from op_modules import collected
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate

from qonnx_spartan.hostio import HostIO
from qonnx_spartan.ops import OPS

DESIGNS = collected("EXTREMES")
RECOMPUTATIONS = collected("RECOMPUTE")


def test_adding_the_half_then_flooring_rounds_half_to_even():
    for s in range(1, 9):
        for x in range(-(1 << (s + 3)), 1 << (s + 3)):
            assert shift_rounded(x + (1 << (s - 1)), s) == half_even(x, s), (x, s)


def recomputed(op, operands: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """The outputs of one batch item and the values its registers held, recomputed in Python integers by
    the recomputation of the op's class or engine."""
    engine = next((e for e in RECOMPUTATIONS if isinstance(op, e)), None)
    assert engine is not None, f"{type(op).__name__} has no exact recomputation (RECOMPUTE in its test module)"
    return RECOMPUTATIONS[engine](op, operands)


def input_extremes(io: HostIO) -> np.ndarray:
    """The extremes of the input, and rows alternating between all minimum and all maximum."""
    t, shape = io.input.dtype, io.input.shape
    rows = extremes(t, io.input.count, period=shape[-1])[2:] if len(shape) > 2 else []
    return np.array(extremes(t, io.input.count) + rows)


def reference_context(model, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the integer reference over a batch of input vectors."""
    io = HostIO.load(model)
    batched = copy.deepcopy(model)
    batched.set_tensor_shape(io.input.name, [len(vectors), *io.input.shape[1:]])
    x = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), *io.input.shape[1:])
    return execute_onnx(batched, {io.input.name: x}, return_full_exec_context=True)


def as_ints(a: np.ndarray) -> list[list[int]]:
    """Per batch item, the flat values as Python integers (the containers are exact floats)."""
    return [[int(v) for v in row] for row in np.asarray(a).reshape(len(a), -1)]


def test_every_registered_op_has_an_extreme_design():
    """Every op of the registry is recomputed exactly and runs in a design of its test module's EXTREMES."""
    covered = {node.op_type for design in DESIGNS.values() for node in design.make().graph.node}
    for name, op in OPS.items():
        assert name in covered, f"{name}: no design in EXTREMES (tests/test_op_<name>.py)"
        assert any(issubclass(op, engine) for engine in RECOMPUTATIONS), f"{name}: no exact recomputation"


@pytest.mark.parametrize("name", list(DESIGNS))
def test_extremes_exact_within_declared_widths_and_in_ghdl(tmp_path: Path, name, ghdl):
    design = DESIGNS[name]
    model = design.make()
    io = HostIO.load(model)
    vectors = input_extremes(io)
    context = reference_context(model, vectors)
    held = {}
    for node in model.graph.node:
        op = getCustomOp(node)
        inputs = [as_ints(context[t]) for t in node.input]
        reference = as_ints(context[node.output[0]])
        held = {}
        for item, got in enumerate(reference):
            want, registers = recomputed(op, [values[item] for values in inputs])  # (b) checked inside
            assert got == want, (node.name, item)  # (a)
            for register, values in registers.items():
                held.setdefault(register, []).extend(values)
    if design.reaches_acc_range:  # (b) of the last op, over every item
        assert (min(held["acc"] + [0]), max(held["acc"] + [0])) == op.acc_range()

    report = build_and_simulate(model, tmp_path, vectors.reshape(len(vectors), *io.input.shape[1:]))  # (c)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.reference.tolist() == as_ints(context[io.output.name])
