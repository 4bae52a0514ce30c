"""Bad input: one line naming the file, node or field; non-zero exit; no traceback; no output left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from brevitas_models import export, make_mlp
from cli_errors import cli_error
from onnx import TensorProto, helper

from qonnx_spartan.cli import main


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory) -> Path:
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test model")
    path = tmp_path_factory.mktemp("model") / "mlp.onnx"
    return export(make_mlp([4, 6, 2], 4), path, (1, 4))


def assert_build_fails(capsys, tmp_path, model, *extra, expect: str) -> str:
    out = tmp_path / "out"
    msg = cli_error(capsys, "build", model, "-o", out, *extra)
    assert expect in msg, msg
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temporary left
    return msg


def test_missing_model_file(capsys, tmp_path):
    assert_build_fails(capsys, tmp_path, tmp_path / "nope.onnx", expect="nope.onnx: model file not found")


def test_random_bytes(capsys, tmp_path):
    f = tmp_path / "noise.onnx"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_build_fails(capsys, tmp_path, f, expect="noise.onnx: not a readable ONNX model")


def test_truncated_onnx(capsys, tmp_path, mlp_onnx):
    f = tmp_path / "cut.onnx"
    f.write_bytes(mlp_onnx.read_bytes()[: mlp_onnx.stat().st_size // 2])
    assert_build_fails(capsys, tmp_path, f, expect="cut.onnx:")


def test_unsupported_op_names_op_type_and_node(capsys, tmp_path, mlp_onnx):
    model = onnx.load(mlp_onnx)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "Sin", "my_sin"  # a function without a table (functions.py)
    f = tmp_path / "sin.onnx"
    onnx.save(model, f)
    msg = assert_build_fails(capsys, tmp_path, f, expect="op type Sin is not supported")
    assert "my_sin" in msg


def test_float_graph_without_quant(capsys, tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], np.ones(8).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    f = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), f)
    assert_build_fails(capsys, tmp_path, f, expect="no Quant nodes")


@pytest.mark.parametrize(
    "text,expect",
    [
        ("device: xc7s15\ncaps: {LUT: -5}\n", "field 'caps.LUT'"),
        ("device: xc9z999\n", "unknown device 'xc9z999'"),
        ("device: [unclosed\n  - : :\n", "not valid YAML or JSON"),
        ("just some words", "a budget is a mapping"),
        ('{"utilization": 1.5}', "field 'utilization'"),
        ('{"clock": 100}', "field 'clock': unknown field"),
    ],
)
def test_bad_budget(capsys, tmp_path, mlp_onnx, text, expect):
    budget = tmp_path / "budget.yaml"
    budget.write_text(text)
    msg = assert_build_fails(capsys, tmp_path, mlp_onnx, "--budget", budget, expect=expect)
    assert "budget.yaml" in msg


def test_budget_the_model_cannot_fit_names_each_resource(capsys, tmp_path, mlp_onnx):
    budget = tmp_path / "tight.json"
    budget.write_text('{"device": "xc7s6", "caps": {"LUT": 10, "FF": 5}}')
    msg = assert_build_fails(capsys, tmp_path, mlp_onnx, "--budget", budget, expect="does not fit")
    assert "LUT" in msg and "FF" in msg and "over by" in msg and "xc7s6" in msg


def test_simulate_inputs_of_wrong_shape(capsys, tmp_path, mlp_onnx):
    out = tmp_path / "built"
    assert main(["build", str(mlp_onnx), "-o", str(out)]) == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 5), dtype=np.float32))
    msg = cli_error(capsys, "simulate", out, "--inputs", x, "--output", tmp_path / "y.npy")
    assert "x.npy" in msg and "[3, 5]" in msg
    assert not (tmp_path / "y.npy").exists()


def test_simulate_not_a_build(capsys, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4)))
    assert "not a built design" in cli_error(capsys, "simulate", tmp_path, "--inputs", x)


def test_failed_build_keeps_an_earlier_build(capsys, tmp_path, mlp_onnx):
    out = tmp_path / "out"
    assert main(["build", str(mlp_onnx), "-o", str(out)]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    budget = tmp_path / "b.yaml"
    budget.write_text("caps: {DSP: 0, LUT: 1}\n")
    cli_error(capsys, "build", mlp_onnx, "-o", out, "--budget", budget)
    assert sorted(p.name for p in out.rglob("*")) == before


def quantised_graph(tmp_path, body, extra_inits=(), shape=(1, 4, 4)):
    """x -> Quant -> body nodes (reading 'q', writing 'y') -> graph output 'y'."""
    scalar = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [v])  # noqa: E731
    quant = helper.make_node(
        "Quant",
        ["x", "s", "z", "b"],
        ["q"],
        name="in_quant",
        domain="qonnx.custom_op.general",
        signed=1,
        narrow=0,
        rounding_mode="ROUND",
    )
    graph = helper.make_graph(
        [quant, *body],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [scalar("s", 0.125), scalar("z", 0.0), scalar("b", 8.0), *extra_inits],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("qonnx.custom_op.general", 1)]
    )
    path = tmp_path / "graph.onnx"
    onnx.save(model, path)
    return path


def test_unquantised_layernorm_names_the_node(capsys, tmp_path):
    ln = helper.make_node("LayerNormalization", ["q", "gamma"], ["y"], name="my_layernorm", axis=-1)
    gamma = helper.make_tensor("gamma", TensorProto.FLOAT, [4], [1.0] * 4)
    msg = assert_build_fails(capsys, tmp_path, quantised_graph(tmp_path, [ln], [gamma]), expect="my_layernorm")
    assert "must be quantised" in msg


def test_softmax_over_an_unmappable_axis_names_the_node(capsys, tmp_path):
    softmax = helper.make_node("Softmax", ["q"], ["p"], name="odd_softmax", axis=1)
    requant = helper.make_node(
        "Quant",
        ["p", "s", "z", "b"],
        ["y"],
        name="out_quant",
        domain="qonnx.custom_op.general",
        signed=0,
        narrow=0,
        rounding_mode="ROUND",
    )
    msg = assert_build_fails(capsys, tmp_path, quantised_graph(tmp_path, [softmax, requant]), expect="odd_softmax")
    assert "axis 1" in msg


def test_product_of_a_tensor_with_itself_names_the_node(capsys, tmp_path):
    mm = helper.make_node("MatMul", ["q", "q"], ["m"], name="self_product")
    requant = helper.make_node(
        "Quant",
        ["m", "s", "z", "b"],
        ["y"],
        name="out_quant",
        domain="qonnx.custom_op.general",
        signed=1,
        narrow=0,
        rounding_mode="ROUND",
    )
    assert_build_fails(capsys, tmp_path, quantised_graph(tmp_path, [mm, requant]), expect="self_product")


def test_simulate_reports_a_corrupted_design(capsys, tmp_path, mlp_onnx, ghdl):
    """The comparison can fail: one flipped weight bit in the generated ROM (bit 0 of its first LUT6's
    INIT) gives exit 1 and bit_exact false."""
    import json
    import re

    out = tmp_path / "built"
    assert main(["build", str(mlp_onnx), "-o", str(out), "--memory-style", "distributed"]) == 0
    rom = sorted((out / "hdl").glob("*_w_rom.vhd"))[0]
    text = rom.read_text()
    init = re.search(r'INIT => x"([0-9A-F]{16})"', text)
    flipped = f"{int(init.group(1), 16) ^ 1:016X}"
    rom.write_text(text.replace(init.group(0), f'INIT => x"{flipped}"', 1))
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 2)
    capsys.readouterr()
    assert main(["simulate", str(out), "--inputs", str(x)]) == 1
    assert "MISMATCHED" in capsys.readouterr().out
    report = json.loads((out / "report" / "sim.json").read_text())
    assert report["bit_exact"] is False and report["mismatched_vectors"] > 0
