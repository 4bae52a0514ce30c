"""Plans: loading, every bad plan as one CLI line, bit widths set on the exported graph (bit-exact in GHDL, the
same ops as a model exported at those widths), memory styles fixed by the plan or placed to fit the budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from brevitas_models import export, make_mlp
from cli_errors import cli_error
from fidelity import requantised_tensor_lsb_errors
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.budget import load_budget
from qonnx_spartan.cli import main
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.flow import DEFAULT_STEPS, BuildConfig, build
from qonnx_spartan.model_file import load_model
from qonnx_spartan.plan import Plan, load_plan, scope_path
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import AnnotateBitwidths, AnnotateLanes, Tidy

REPO = Path(__file__).parents[1]
# make_mlp(SIZES): 0 QuantIdentity, 1 QuantLinear, 2 QuantReLU, 3 QuantLinear, 4 QuantReLU, 5 QuantLinear
SIZES = [6, 16, 12, 2]
ALL_SIX = {
    "0": {"act_bits": 6},
    "1": {"weight_bits": 6},
    "2": {"act_bits": 6},
    "3": {"weight_bits": 6},
    "4": {"act_bits": 6},
    "5": {"weight_bits": 6, "act_bits": 6},
}


@pytest.fixture(scope="module")
def mlp8(tmp_path_factory) -> Path:
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test model")
    path = tmp_path_factory.mktemp("mlp8") / "mlp.onnx"
    return export(make_mlp(SIZES, 8, out_quant=True, seed=1), path, (1, SIZES[0]))


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def styles(model) -> dict[str, dict[str, str]]:
    """{layer: {role: style}} of a lowered model, the input buffer under "input"."""
    found = {"input": {"out": model.get_metadata_prop("qonnx_spartan.input_mem_style")}}
    for node in model.graph.node:
        op = getCustomOp(node)
        roles = ["out", *op.weight_memories()]
        found[node.name] = {role: op.get_nodeattr(f"{role}_mem_style") for role in roles}
    return found


# -- the file ---------------------------------------------------------------------------------------------
def test_json_and_yaml_plans_are_the_same_plan(tmp_path):
    as_json = write(tmp_path / "plan.json", {"encoder.q_proj": {"weight_bits": 6, "out_mem_style": "block"}, "0": {}})
    as_yaml = write(tmp_path / "plan.yaml", "encoder.q_proj: {weight_bits: 6, out_mem_style: block}\n0: {}\n")
    assert load_plan(as_json).root == load_plan(as_yaml).root  # YAML's key 0 is the module "0"
    assert load_plan(as_yaml).to_json() == {"encoder.q_proj": {"weight_bits": 6, "out_mem_style": "block"}, "0": {}}
    assert load_plan(REPO / "examples" / "plans" / "mixed.json").root["encoder.ffn1"].weight_bits == 4


def test_scope_paths_follow_the_exporter():
    """Module scopes as torch names them: attributes relative to their parent, a container's children
    relative to the container's parent."""
    assert scope_path("/encoder/q_proj/MatMul") == ["encoder", "q_proj", "MatMul"]
    assert scope_path("/layers.0/Gemm") == ["layers", "0", "Gemm"]
    assert scope_path("/enc/enc.0/seq/seq.1/seq.1.0/act_quant/export_handler/Quant")[:5] == [
        "enc",
        "0",
        "seq",
        "1",
        "0",
    ]
    assert scope_path("135") is None


BAD_PLANS = [
    ({"1": {"weight_bits": 12}}, "entry '1': weight_bits 12 is out of range (2 to 8)"),
    ({"2": {"act_bits": 1}}, "entry '2': act_bits 1 is out of range"),
    ({"1": {"weight_bits": "6"}}, "entry '1': weight_bits must be a whole number from 2 to 8, not \"6\""),
    ({"1": {"weight_bits": 5.5}}, "entry '1': weight_bits must be a whole number"),
    ({"1": {"out_mem_style": "bram"}}, "entry '1': out_mem_style \"bram\" is not one of block, distributed"),
    ({"1": {"weight_mem_style": 1}}, "entry '1': weight_mem_style 1 is not one of"),
    ({"1": {"wbits": 4}}, "entry '1': unknown field 'wbits'"),
    ({"1": [4, 4]}, "entry '1': not a mapping of fields"),
    ([{"1": {"weight_bits": 4}}], "a plan is a mapping"),
    ("weight_bits: [unclosed\n", "not valid YAML or JSON"),
    ({"encoder.q_proj": {"weight_bits": 6}}, "entry 'encoder.q_proj': the model has no module or node of that name"),
    ({"1": {"act_bits": 6}}, "entry '1': act_bits is set, but it names no act quantiser"),
    ({"0": {"weight_bits": 6}}, "entry '0': weight_bits is set, but it names no weight quantiser"),
    (
        {"0": {"weight_mem_style": "block"}},
        "entry '0': weight_mem_style is set, but the layers it names have no weight",
    ),
    (
        {"1": {"out_mem_style": "block"}, "2": {"out_mem_style": "distributed"}},
        "entry '2': out_mem_style distributed contradicts entry '1' (block)",
    ),
    (
        {"5": {"weight_bits": 6}, "/5/weight_quant/export_handler/Quant": {"weight_bits": 5}},
        "contradicts entry '5' (6 bits)",
    ),
]


@pytest.mark.parametrize("data,expect", BAD_PLANS)
def test_a_bad_plan_is_one_line_naming_the_file_and_entry(capsys, tmp_path, mlp8, data, expect):
    plan = write(tmp_path / "plan.yaml", data)
    out = tmp_path / "out"
    msg = cli_error(capsys, "build", mlp8, "-o", out, "--plan", plan)
    assert expect in msg and "plan.yaml" in msg, msg
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    assert cli_error(capsys, "estimate", mlp8, "--plan", plan) == msg


def test_unknown_entries_list_known_modules(capsys, tmp_path, mlp8):
    msg = cli_error(capsys, "estimate", mlp8, "--plan", write(tmp_path / "p.json", {"6": {"act_bits": 4}}))
    assert "known: 0, 1, 2, 3, 4, 5" in msg
    assert "plan file not found" in cli_error(capsys, "estimate", mlp8, "--plan", tmp_path / "none.json")


# -- bit widths -------------------------------------------------------------------------------------------
def op_widths(model) -> list[tuple]:
    """Every op's type, its integer types and, for linear layers, its integer weights and weight width."""
    widths = []
    for node in model.graph.node:
        op = getCustomOp(node)
        types = tuple(op.get_nodeattr(a) for a in ("in_dtype", "out_dtype") if a in op.get_nodeattr_types())
        weights = (op.b_bits(), op.weights().tolist()) if node.op_type == "IntLinear" else None
        widths.append((node.op_type, types, weights))
    return widths


def test_annotated_to_six_bits_is_bit_exact_in_ghdl(tmp_path, mlp8, ghdl):
    x = (np.random.default_rng(1).normal(size=(24, SIZES[0])) * 2).astype(np.float32)
    eight = build(BuildConfig(model=mlp8, output_dir=tmp_path / "eight", stop_step="lower"))
    out = tmp_path / "six"
    six = build(BuildConfig(model=mlp8, output_dir=out, plan=Plan.model_validate(ALL_SIX)))
    assert {t for _, types, _ in op_widths(six) for t in types} == {"INT6", "UINT6"}
    assert {w[0] for _, _, w in op_widths(six) if w} == {6}

    report = simulate_build(out, x)
    assert report.bit_exact
    # the integer graph computes what the annotated QONNX graph computes (to 1 LSB with float scales)
    annotated = load_model(mlp8).transform(AnnotateBitwidths(Plan.model_validate(ALL_SIX))).transform(Tidy())
    assert max(requantised_tensor_lsb_errors(annotated, six, x[:8]).values()) <= 1
    # and differs from the 8-bit one by about what two bits fewer cost
    from qonnx_spartan.hostio import HostIO
    from qonnx_spartan.reference import run_reference

    io8 = HostIO.load(eight)
    y8 = io8.output.dequantize(run_reference(eight, io8.batch(x, "x")))
    y6 = report.io.output.dequantize(report.hardware)
    assert report.io.output.scale > io8.output.scale
    assert 0 < float(np.sqrt(np.mean((y6 - y8) ** 2))) < 0.2 * float(np.std(y8))
    assert np.abs(y6 - y8).max() <= 2.001 * report.io.output.scale


@pytest.mark.parametrize("po2", [False, True])
def test_annotating_gives_the_ops_of_a_model_exported_at_those_widths(tmp_path, brevitas, po2):
    exported = {}
    for bits in (8, 6):
        path = export(make_mlp(SIZES, bits, po2=po2, out_quant=True, seed=2), tmp_path / f"mlp{bits}.onnx", (1, 6))
        exported[bits] = path
    plan = Plan.model_validate(ALL_SIX)
    annotated = build(BuildConfig(model=exported[8], output_dir=tmp_path / "a", plan=plan, stop_step="lower"))
    native = build(BuildConfig(model=exported[6], output_dir=tmp_path / "n", stop_step="lower"))
    assert op_widths(annotated) == op_widths(native)  # the same integer weights, too
    if po2:  # power-of-two activation ranges calibrate alike at 6 and 8 bits: the same rescaling
        rescales = [[getCustomOp(n).get_nodeattr(a) for a in ("multiplier", "shift")] for n in native.graph.node]
        assert [[getCustomOp(n).get_nodeattr(a) for a in ("multiplier", "shift")] for n in annotated.graph.node] == (
            rescales
        )


def test_the_forecaster_with_the_mixed_plan(tmp_path, brevitas):
    """Brevitas module names reach every kind of layer, also through views (context_quant writes through a
    transpose) and constants (pe_quant is the ROM of an addition)."""
    import torch
    from brevitas_models import calibrated
    from model import build_model

    torch.manual_seed(0)
    path = tmp_path / "forecaster.onnx"
    export(calibrated(build_model(6, 3, 16, 2, 8, po2=True), (6, 3)), path, (1, 6, 3))
    data = json.loads((REPO / "examples" / "plans" / "mixed.json").read_text())
    data["encoder.context_quant"] = {"act_bits": 5, "out_mem_style": "block"}
    data["embed.pe_quant"] = {"weight_mem_style": "block"}
    model = build(
        BuildConfig(model=path, output_dir=tmp_path / "b", plan=Plan.model_validate(data), stop_step="estimate")
    )
    ops = {n.name: getCustomOp(n) for n in model.graph.node}
    assert ops["/encoder/ffn1/MatMul"].b_bits() == ops["/encoder/ffn2/MatMul"].b_bits() == 4
    assert ops["/encoder/q_proj/MatMul"].b_bits() == 6 and ops["/encoder/v_proj/MatMul"].b_bits() == 8
    assert ops["/encoder/ffn1/MatMul"].get_nodeattr("out_dtype") == "UINT6"  # ffn_relu's act_bits
    assert ops["/encoder/Softmax"].get_nodeattr("out_dtype") == "UINT6"
    assert ops["/encoder/MatMul_1"].get_nodeattr("out_dtype") == "INT5"
    placed = styles(model)
    assert placed["/encoder/MatMul_1"]["out"] == "block" and placed["/embed/Add"]["c"] == "block"
    with pytest.raises(SpartanError, match=r"entry 'encoder\.qproj': .* \(known: encoder\.q_proj, "):
        build(BuildConfig(model=path, output_dir=tmp_path / "c", plan=Plan.model_validate({"encoder.qproj": {}})))


# -- memory styles ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_mlp(tmp_path_factory) -> Path:
    """One 128-deep buffer (24 LUTRAM) between an 8-word input (8) and a 4-word output (16)."""
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test model")
    path = tmp_path_factory.mktemp("wide") / "mlp.onnx"
    return export(make_mlp([8, 128, 4], 8, seed=3), path, (1, 8))


def lutram_budget(tmp_path: Path, lutram: int) -> Path:
    return write(tmp_path / "budget.yaml", f"device: xc7s15\ncaps: {{LUTRAM: {lutram}}}\n")


def test_budget_placement_fits_where_lutram_alone_does_not(capsys, tmp_path, wide_mlp):
    budget = lutram_budget(tmp_path, 30)
    msg = cli_error(
        capsys, "build", wide_mlp, "-o", tmp_path / "d", "--budget", budget, "--memory-style", "distributed"
    )
    assert "does not fit" in msg and "LUTRAM 48 > 30" in msg

    out = tmp_path / "b"
    assert main(["build", str(wide_mlp), "-o", str(out), "--budget", str(budget), "--memory-style", "budget"]) == 0
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert report["fits"] and report["total"]["BRAM18"] == 1 and report["total"]["LUTRAM"] == 24
    placed = styles(load_model(out / "model_int.onnx"))
    block = [(layer, role) for layer, roles in placed.items() for role, style in roles.items() if style == "block"]
    assert block == [("/1/Gemm", "out")]  # the memory saving the most LUTRAM per block RAM


def test_budget_placement_honours_the_plan_and_the_lanes_step_sees_it(tmp_path, wide_mlp):
    plan = Plan.model_validate({"2": {"out_mem_style": "distributed"}, "3": {"weight_mem_style": "block"}})
    out = tmp_path / "b"
    budget = load_budget(lutram_budget(tmp_path, 30))
    model = build(BuildConfig(model=wide_mlp, output_dir=out, budget=budget, memory_style="budget", plan=plan))
    placed = styles(model)
    assert placed["/1/Gemm"]["out"] == "distributed"  # fixed by the plan (QuantReLU "2" quantises it)
    assert placed["/3/Gemm"]["w"] == "block"
    assert placed["input"]["out"] == placed["/3/Gemm"]["out"] == "block"  # both needed: 48 - 8 - 16 <= 30
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert report["fits"]
    again = AnnotateLanes(budget, "budget", plan=plan).evaluate(model)
    assert (again["total"], again["cycles"]) == (report["total"], report["cycles"])
    assert json.loads((out / "report" / "build.json").read_text())["plan"] == plan.to_json()


def test_plan_styles_apply_in_every_mode(tmp_path, mlp8):
    plan = Plan.model_validate({"1": {"out_mem_style": "block", "weight_mem_style": "block"}})
    for mode in ("distributed", "auto"):
        model = build(BuildConfig(model=mlp8, output_dir=tmp_path / mode, memory_style=mode, plan=plan))
        placed = styles(model)
        assert placed.pop("/1/Gemm") == {"out": "block", "w": "block"}
        assert {style for roles in placed.values() for style in roles.values()} == {"distributed"}


def test_a_plan_on_an_already_lowered_model_places_memories_by_layer_name(tmp_path, mlp8):
    first = tmp_path / "first"
    build(BuildConfig(model=mlp8, output_dir=first, stop_step="lower"))
    lowered = first / "intermediate_models" / f"{DEFAULT_STEPS.index('lower'):02d}_lower.onnx"
    plan = Plan.model_validate({"/3/Gemm": {"out_mem_style": "block"}})
    model = build(BuildConfig(model=lowered, output_dir=tmp_path / "b", start_step="memory_style", plan=plan))
    assert styles(model)["/3/Gemm"]["out"] == "block"
    with pytest.raises(SpartanError, match="entry 'nope': the model has no module or node"):
        bad = Plan.model_validate({"nope": {"out_mem_style": "block"}})
        build(BuildConfig(model=lowered, output_dir=tmp_path / "c", start_step="memory_style", plan=bad))


def test_training_takes_the_bit_widths_of_a_searched_plan(brevitas):
    """A searched plan also places memories by exported node name; QAT training takes its widths alone, so
    the loop search -> QAT -> export -> build closes (examples/forecasting/train.py --plan)."""
    from model import build_model

    from qonnx_spartan.plan import Plan

    plan = Plan.model_validate(
        {
            "encoder.ffn1": {"weight_bits": 4, "weight_mem_style": "block"},
            "encoder.softmax_quant": {"act_bits": 6},
            "/encoder/MatMul": {"out_mem_style": "distributed"},
        }
    )
    widths = plan.bit_widths()
    assert widths == {"encoder.ffn1": {"weight_bits": 4}, "encoder.softmax_quant": {"act_bits": 6}}
    model = build_model(6, 3, 16, 1, 8, plan=widths, po2=True)
    assert int(model.encoder.ffn1.quant_weight().bit_width) == 4
