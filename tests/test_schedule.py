"""The schedule (qonnx_spartan/schedule.py): layers start as early as their data allow, bit-exact in GHDL in
exactly the predicted cycles, and no earlier: one cycle sooner and the hardware reads a stale element."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io
from test_lanes import linear_node
from test_requantiser import sharing_chain

from qonnx_spartan import schedule as schedule_module
from qonnx_spartan.design import Design
from qonnx_spartan import embedded
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.intarith import IntType
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.base import KeyedMemo
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.schedule import Schedule, read_after_write


def sequential(cycles: list[int]) -> Schedule:
    """The layers one after another: each starts the cycle after the previous one's done pulse."""
    starts, dones, t = [], [], 0
    for c in cycles:
        starts.append(t)
        dones.append(t + c)
        t += c + 1
    return Schedule(tuple(starts), tuple(dones))


def chain(rng, lanes=(1, 3, 2)):
    """Three IntLinear layers in a row over 4 rows: one lane, three lanes with a short last group, two lanes;
    each reads the one before it row by row, so each may start while the one before it still works."""
    in_type = IntType(True, 8)
    nodes, types, t = [], {}, in_type
    for k, (n, p) in enumerate(zip((8, 7, 4), lanes)):
        node, t = linear_node(rng, 4, (6, 8, 7)[k], n, t, 6 + k, lanes=p, extreme=True)
        node.name, node.input[0], node.output[0] = f"fc{k}", ["x", "h0", "h1"][k], ["h0", "h1", "y"][k]
        nodes.append(node)
        types[node.output[0]] = t
    model = lowered_model(nodes, tensor_io("x", [1, 4, 6], in_type), tensor_io("y", [1, 4, 4], t), types)
    return model, in_type


def vectors(rng, in_type: IntType, count: int = 8) -> np.ndarray:
    x = rng.integers(in_type.lo, in_type.hi + 1, size=(count, 4, 6))
    x[0], x[1] = in_type.lo, in_type.hi
    return x


def test_overlapped_layers_are_bit_exact_in_the_predicted_cycles(tmp_path: Path, ghdl):
    rng = np.random.default_rng(3)
    model, in_type = chain(rng)
    design = Design(model)
    assert design.schedule.overlaps
    one_by_one = sequential([layer.op.cycles() for layer in design.layers])
    assert design.schedule.end < one_by_one.end
    report = build_and_simulate(model, tmp_path, vectors(rng, in_type))
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(load_model(tmp_path / "build" / "model_int.onnx")).cycles()


def test_a_layer_started_one_cycle_early_reads_a_stale_element(tmp_path: Path, ghdl, monkeypatch):
    """The traces are exact, not merely safe: the read-after-write distance less one breaks bit-exactness."""
    monkeypatch.setattr(schedule_module, "read_after_write", lambda p, c, port: read_after_write(p, c, port) - 1)
    monkeypatch.setattr(schedule_module, "MEMO", KeyedMemo(64))  # none of the right distances kept
    rng = np.random.default_rng(3)
    model, in_type = chain(rng)
    report = build_and_simulate(model, tmp_path, vectors(rng, in_type))
    assert not report.bit_exact


@pytest.mark.parametrize("lanes", [(1, 1, 1), (1, 3, 2), (2, 8, 4)])
def test_mac_writes_every_output_once_and_the_last_at_the_done_pulse(lanes):
    model, _ = chain(np.random.default_rng(5), lanes)
    for node in model.graph.node:
        op = getCustomOp(node)
        writes = op.write_trace()
        assert sorted(writes.addresses.tolist()) == list(range(op.output_buffer().depth))
        assert writes.cycles.max() == op.cycles()
        reads = op.read_trace("x")
        h, m, _, k = op.loops()
        assert reads.cycles.tolist() == list(range(1, h * m * op.groups() * k + 1))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The embedded Transformer as the build lowers it, with its lanes."""
    out = tmp_path_factory.mktemp("example") / "build"
    return build(BuildConfig(model=embedded.model_path(), output_dir=out, stop_step="estimate"))


def test_every_read_follows_its_write(example):
    """On the embedded Transformer: each reader of a written buffer reads every element at least one edge
    after it is written; a reader without traces starts after its writer is done."""
    design = Design(example)
    s = design.schedule
    assert s.overlaps
    for layer in design.layers:
        for port, tensor in zip(("x", "z"), layer.inputs):
            writer = design.buffers[tensor].writer
            if writer is None:
                continue
            producer = design.layers[writer].op
            writes, reads = producer.write_trace(), layer.op.read_trace(port)
            if writes is None or reads is None:
                assert s.starts[layer.index] > s.dones[writer]
                continue
            when = dict(zip(writes.addresses.tolist(), (writes.cycles + s.starts[writer]).tolist()))
            gaps = reads.cycles + s.starts[layer.index] - np.array([when[a] for a in reads.addresses.tolist()])
            assert gaps.min() >= 1


def check_traces(design: Design) -> None:
    """Every op with traces writes each element of its output buffer once, the last no later than its done
    pulse, and reads only between its start and its done pulse."""
    for layer in design.layers:
        op, writes = layer.op, layer.op.write_trace()
        if writes is None:
            continue
        assert sorted(writes.addresses.tolist()) == list(range(op.output_buffer().depth)), layer.name
        assert 1 <= writes.cycles.min() and writes.cycles.max() <= op.cycles(), layer.name
        for port in ("x", "z")[: len(layer.inputs)]:
            reads = op.read_trace(port)
            assert 1 <= reads.cycles.min() and reads.cycles.max() < op.cycles(), layer.name


def test_every_op_of_the_example_keeps_to_its_traces(example):
    design = Design(example)
    assert {"IntLinear", "IntMatMul", "IntSoftmax", "IntAdd", "IntAffine", "IntMean"} <= {
        layer.op.onnx_node.op_type for layer in design.layers
    }
    check_traces(design)


def test_readers_of_one_read_port_are_never_busy_at_once(example):
    design = Design(example)
    s = design.schedule
    for buffer in design.buffers.values():
        busy = sorted((s.starts[i], s.dones[i]) for i, _ in design.shared_readers(buffer))
        assert all(later[0] >= earlier[1] for earlier, later in zip(busy, busy[1:]))


def test_the_example_with_its_copies_is_bit_exact_in_the_predicted_cycles(tmp_path: Path, ghdl):
    """The embedded Transformer as built by default: the projections read copies of their input and run at
    once, the softmax trails its scores; GHDL bit-exact on the example's test windows."""
    out = tmp_path / "build"
    model = build(BuildConfig(model=embedded.model_path(), output_dir=out))
    design = Design(model)
    s = design.schedule
    copied = [layer for layer in design.layers if layer.op.read_copies()]
    assert copied
    for layer in copied:
        buffer = design.buffers[layer.inputs[0]]
        others = [i for i, _ in buffer.readers if i != layer.index]
        assert any(s.starts[layer.index] < s.dones[i] and s.starts[i] < s.dones[layer.index] for i in others)
    x = np.load(embedded.inputs_path())[:12]
    report = simulate_build(out, x, simulator="ghdl")
    assert report.bit_exact
    assert report.cycles_per_inference == design.cycles()


def test_layers_sharing_the_rescale_take_it_in_turn(tmp_path: Path, ghdl):
    """The first and last of three float-scale layers share the rescale multiplier, the middle one has its
    own: it overlaps both, they never run at once, and the multiplier serves each with its own M."""
    rng = np.random.default_rng(12)
    model, in_type = sharing_chain(rng)
    getCustomOp(model.graph.node[1]).set_nodeattr("shared_rescale", 0)
    design = Design(model)
    assert sorted(design.shared_rescale.layers) == [0, 2]
    s = design.schedule
    assert s.starts[1] <= s.dones[0] and s.starts[2] <= s.dones[1]
    assert s.starts[2] >= s.dones[0]
    x = rng.integers(in_type.lo, in_type.hi + 1, size=(8, 3, 6))
    x[0], x[1] = in_type.lo, in_type.hi
    report = build_and_simulate(model, tmp_path, x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(load_model(tmp_path / "build" / "model_int.onnx")).cycles()
