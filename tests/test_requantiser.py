"""The rescale multiplier the MAC layers share (qonnx_spartan/requantiser.py): GHDL bit-exact in the
predicted cycles with inputs and weights at their extremes, its DSPs against synthesis, and a model refused
for DSPs before it that now builds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io
from test_lanes import linear_node

from qonnx_spartan.design import Design
from qonnx_spartan.estimate import estimate
from qonnx_spartan.flow import BuildConfig, estimate_only
from qonnx_spartan.intarith import IntType
from qonnx_spartan.model_file import load_model
from qonnx_spartan.synth import synthesise


def sharing_chain(rng):
    """Three float-scale IntLinear layers in a row, all sharing the rescale: one lane, three lanes with a
    short last group (the operand from the lane multiplexer), one lane whose products enter a bit up."""
    in_type = IntType(True, 8)
    first, t1 = linear_node(rng, 3, 6, 8, in_type, 8, extreme=True)
    second, t2 = linear_node(rng, 3, 8, 7, t1, 7, lanes=3, extreme=True)
    third, t3 = linear_node(rng, 3, 7, 4, t2, 8, acc_shift=1, extreme=True)
    for k, node in enumerate((first, second, third)):
        node.name = f"fc{k}"
        node.input[0] = ["x", "h0", "h1"][k]
        node.output[0] = ["h0", "h1", "y"][k]
        getCustomOp(node).set_nodeattr("shared_rescale", 1)
    model = lowered_model(
        [first, second, third],
        tensor_io("x", [1, 3, 6], in_type),
        tensor_io("y", [1, 3, 4], t3),
        {"h0": t1, "h1": t2, "y": t3},
    )
    return model, in_type


def test_a_shared_rescale_is_bit_exact_in_the_predicted_cycles(tmp_path: Path, ghdl, yosys):
    """Every layer's numbers and cycles are those of its own rescale DSP; the design has one rescale
    multiplier, in the top level, and its DSPs are the estimate's."""
    rng = np.random.default_rng(12)
    model, in_type = sharing_chain(rng)
    ops = [getCustomOp(node) for node in model.graph.node]
    assert all(op.shares_rescale() for op in ops)
    shared = Design(model).shared_rescale
    assert sorted(shared.layers) == [0, 1, 2]
    x = rng.integers(in_type.lo, in_type.hi + 1, size=(8, 3, 6))
    x[0], x[1], x[2] = in_type.lo, in_type.hi, np.where(np.arange(6) % 2, in_type.lo, in_type.hi)
    report = build_and_simulate(model, tmp_path, x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    built = load_model(tmp_path / "build" / "model_int.onnx")
    assert report.cycles_per_inference == Design(built).cycles()

    estimated = estimate(built)
    assert estimated["layers"]["top"]["DSP"] == shared.resources()["DSP"] >= 1
    assert all(estimated["layers"][op.onnx_node.name]["DSP"] == op.dsps() for op in ops)
    synth = synthesise(tmp_path / "build")
    assert synth["total"]["DSP"] == estimated["total"]["DSP"]
    assert synth["layers"]["top"]["DSP"] == estimated["layers"]["top"]["DSP"]


def test_sharing_changes_neither_the_numbers_nor_the_cycles():
    """The reference does not know where the rescale multiplies; the cycle count does not either."""
    rng = np.random.default_rng(3)
    model, in_type = sharing_chain(rng)
    shared = [getCustomOp(node).cycles() for node in model.graph.node]
    for node in model.graph.node:
        getCustomOp(node).set_nodeattr("shared_rescale", 0)
    assert [getCustomOp(node).cycles() for node in model.graph.node] == shared
    assert Design(model).shared_rescale is None


def test_a_layernorm_model_refused_for_dsps_now_builds(tmp_path: Path, brevitas):
    """A 3-bit pre-norm forecaster with float scales, 4 heads and LayerNorms needed 29 DSP48E1s (a rescale
    per MAC layer, the norms' and the softmax's multipliers) and was refused for the XC7S15; the default
    build shares the rescales and fits."""
    import torch
    from brevitas.export import export_qonnx
    from brevitas_models import calibrated

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "forecasting"))
    from model import build_model

    torch.manual_seed(0)
    model = build_model(8, 3, 48, 4, 3, po2=False, norm="layer", act="gelu")
    path = tmp_path / "ln.onnx"
    export_qonnx(calibrated(model, (8, 3)), torch.randn(1, 8, 3), export_path=str(path), dynamo=False)
    report = estimate_only(BuildConfig(model=path, output_dir=tmp_path / "unused"))
    assert report["fits"], report["overflows"]
    assert report["total"]["DSP"] <= 20 and report["layers"]["top"]["DSP"] >= 1


def test_the_lanes_step_keeps_shared_rescales_only_when_faster(tmp_path: Path, brevitas, monkeypatch):
    """A 6-bit float forecaster that fits with a rescale DSP per layer: with them shared, the DSPs freed hold
    lanes but the sharing layers take the multiplier in turn; the lanes step keeps whichever design is
    faster (here its own rescales: its layers overlap)."""
    from brevitas_models import export_config

    import qonnx_spartan.transforms.lanes as lanes_step

    onnx_path, _ = export_config("tf", dict(window=6, d_model=48, heads=1, bits=6, po2=False), tmp_path / "m.onnx")
    config = BuildConfig(model=onnx_path, output_dir=tmp_path / "unused")
    chosen = estimate_only(config)
    monkeypatch.setattr(lanes_step, "rescale_could_share", lambda op: False)
    own = estimate_only(config)
    assert own["fits"] and own["layers"]["top"]["DSP"] == 0
    assert chosen["cycles"] <= own["cycles"]
    assert (chosen["layers"]["top"]["DSP"] > 0) == (chosen["cycles"] < own["cycles"])
