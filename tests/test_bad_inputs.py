"""A corpus of broken budget and model files, and randomly damaged models, through the CLI: each gives one
line naming the file, node or field, exit 2, no traceback, and no output folder (tests/test_errors.py has
the helpers and the first cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from brevitas_models import calibrated, export, make_mlp
from fuzz_models import FuzzCase, build_damaged, damaged, draw_damage, make_model
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from test_errors import assert_build_fails

from qonnx_spartan.cli import EXIT_USER_ERROR, main

# -- budget files --------------------------------------------------------------------------------------------
BUDGETS = [
    ("empty", "", "the budget file is empty"),
    ("comment only", "# caps: {LUT: 100}\n", "the budget file is empty"),
    ("a list", "- device: xc7s15\n", "a budget is a mapping"),
    ("a number", "42\n", "a budget is a mapping"),
    ("a string", '"xc7s15"', "a budget is a mapping"),
    ("device a number", "device: 15\n", "field 'device'"),
    ("device without value", "device:\n", "field 'device'"),
    ("utilization a word", "utilization: most\n", "field 'utilization'"),
    ("utilization true", "utilization: true\n", "field 'utilization'"),
    ("utilization 1e300", "utilization: 1.0e300\n", "field 'utilization'"),
    ("utilization NaN", "utilization: .nan\n", "field 'utilization': Input should be a finite number"),
    ("clock infinite", "clock_mhz: .inf\n", "field 'clock_mhz': Input should be a finite number"),
    ("clock 2**200", json.dumps({"clock_mhz": 2**200}), "field 'clock_mhz'"),
    ("caps a list", "caps: [LUT, 100]\n", "field 'caps'"),
    ("caps without value", "caps:\n", "field 'caps'"),
    ("cap true", "caps: {DSP: true}\n", "field 'caps.DSP'"),
    ("cap fractional", "caps: {LUT: 99.5}\n", "field 'caps.LUT'"),
    ("cap 1e300", "caps: {LUT: 1.0e300}\n", "field 'caps.LUT'"),
    ("cap -2**200", json.dumps({"caps": {"LUT": -(2**200)}}), "field 'caps.LUT'"),
    ("cap nested", "caps: {LUT: {max: 100}}\n", "field 'caps.LUT'"),
    ("unknown resource", "caps: {URAM: 4}\n", "field 'caps.URAM': unknown field"),
    ("key not a string", "1: 2\n", "field '1'"),
    ("duplicate key", "device: xc7s15\ncaps: {LUT: 10}\ndevice: xc7s6\n", "line 3 (duplicate key 'device')"),
    ("deep list", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep mapping", "{a: " * 3000 + "1" + "}" * 3000, "nested too deeply"),
    ("tab indentation", "device:\txc7s15\n\tcaps: 1\n", "not valid YAML or JSON at line 1"),
    ("python tag", "!!python/object/apply:os.system ['true']\n", "not valid YAML or JSON at line 1"),
    ("binary", bytes(range(256)) * 4, "cannot read budget file (UnicodeDecodeError)"),
    ("UTF-16", "device: xc7s15\n".encode("utf-16"), "cannot read budget file (UnicodeDecodeError)"),
]


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory) -> Path:
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test models")
    return export(make_mlp([4, 6, 2], 4), tmp_path_factory.mktemp("model") / "mlp.onnx", (1, 4))


@pytest.mark.parametrize("content,expect", [c[1:] for c in BUDGETS], ids=[c[0] for c in BUDGETS])
def test_bad_budget_file(capsys, tmp_path, mlp_onnx, content, expect):
    budget = tmp_path / "budget.yaml"
    budget.write_bytes(content if isinstance(content, bytes) else content.encode())
    msg = assert_build_fails(capsys, tmp_path, mlp_onnx, "--budget", budget, expect=expect)
    assert str(budget) in msg


def test_budget_that_is_a_folder(capsys, tmp_path, mlp_onnx):
    folder = tmp_path / "budget.yaml"
    folder.mkdir()
    assert_build_fails(capsys, tmp_path, mlp_onnx, "--budget", folder, expect="cannot read budget file")


def test_cap_beyond_the_device_is_no_limit(capsys, tmp_path, mlp_onnx):
    """Accepted on purpose: the tighter of cap and device wins, so 2**200 LUTs means the whole device."""
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"device": "xc7s15", "caps": {"LUT": 2**200}}))
    capsys.readouterr()
    assert main(["estimate", str(mlp_onnx), "--budget", str(budget), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget"]["LUT"] == 8000


# -- model files -----------------------------------------------------------------------------------------------
def node(model, op_type: str, index: int = 0):
    return [n for n in model.graph.node if n.op_type == op_type][index]


def weight_quant(model):
    """The first layer's weight Quant (the graph's second Quant)."""
    return node(model, "Quant", 1)


def own_input(model, n, index: int, values) -> None:
    """Give node n its own initializer as input `index` (Brevitas shares zero point and bit width)."""
    name = f"{n.name}_input{index}"
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
    n.input[index] = name


def set_initializer(model, name: str, fill: float) -> None:
    t = next(i for i in model.graph.initializer if i.name == name)
    values = numpy_helper.to_array(t)
    t.CopyFrom(numpy_helper.from_array(np.full_like(values, fill), name))


def dynamic(dim: int, name: str):
    def mutate(m):
        m.graph.input[0].type.tensor_type.shape.dim[dim].dim_param = name

    return mutate


def batch_of_two(m):
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2


def quant_param(which, index: int, values):
    return lambda m: own_input(m, which(m), index, values)


def dynamic_scale(m):
    """The weights' scale computed from the input at run time (a dynamic quantiser)."""
    q_in = node(m, "Quant", 0)
    m.graph.node.insert(1, helper.make_node("ReduceMean", [q_in.output[0]], ["dyn_scale"], name="dyn", keepdims=0))
    weight_quant(m).input[1] = "dyn_scale"


def rounding(mode: str):
    def mutate(m):
        q = node(m, "Quant", 0)
        for a in q.attribute:
            if a.name == "rounding_mode":
                a.s = mode.encode()

    return mutate


def first_weights(fill: float):
    return lambda m: set_initializer(m, weight_quant(m).input[0], fill)


def first_bias(fill: float):
    return lambda m: set_initializer(m, node(m, "Gemm").input[2], fill)


def inner_output(m):
    """The first layer's product, inside its fused layer (before the ReLU and quantiser), as a second output."""
    m.graph.output.append(helper.make_tensor_value_info(node(m, "Gemm").output[0], TensorProto.FLOAT, [1, 6]))


def output_twice(m):
    """The output again, through a Reshape that changes nothing: the same values on two streams."""
    out = m.graph.output[0]
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "same_shape"))
    m.graph.node.append(helper.make_node("Reshape", [out.name, "same_shape"], ["again"], name="/again/Reshape"))
    m.graph.output.append(helper.make_tensor_value_info("again", TensorProto.FLOAT, [1, 2]))


def dangling_input(m):
    node(m, "Gemm").input[0] = "nowhere"


def input_quant(m):
    return node(m, "Quant", 0)


# (mutation of the exported 4-6-2 MLP, what the message must say); Brevitas names the nodes /0/..., /1/...
MODELS = [
    ("symbolic batch", dynamic(0, "batch"), "['batch', 4] is not static"),
    ("symbolic features", dynamic(1, "features"), "[1, 'features'] is not static"),
    ("batch of two", batch_of_two, "batch size 2"),
    ("per-channel weight scale", quant_param(weight_quant, 1, np.linspace(0.01, 0.1, 6)[:, None]), "per-channel"),
    ("zero point on the input", quant_param(input_quant, 2, 3.0), "/0/act_quant/export_handler/Quant"),
    ("zero point on one channel", quant_param(weight_quant, 2, [[0], [0], [0], [0], [0], [1.0]]), "zero point 1.0"),
    ("scale from the input", dynamic_scale, "/1/weight_quant/export_handler/Quant' (Quant): scale, zero point"),
    ("scale zero", quant_param(weight_quant, 1, 0.0), "scale 0.0 must be positive"),
    ("scale negative", quant_param(input_quant, 1, -0.5), "scale -0.5 must be positive"),
    ("scale NaN", quant_param(weight_quant, 1, np.nan), "scale nan must be positive"),
    ("scale infinite", quant_param(input_quant, 1, np.inf), "scale inf must be positive"),
    ("bit width 1", quant_param(weight_quant, 3, 1.0), "bit width 1 is not supported (2 to 16)"),
    ("bit width 32", quant_param(input_quant, 3, 32.0), "bit width 32 is not supported"),
    ("bit width 4.5", quant_param(weight_quant, 3, 4.5), "bit width 4.5 is not supported"),
    ("bit width NaN", quant_param(weight_quant, 3, np.nan), "bit width nan is not supported"),
    ("bit widths, two", quant_param(weight_quant, 3, [4.0, 4.0]), "the bit width must be one number"),
    ("rounding FLOOR", rounding("FLOOR"), "rounding mode FLOOR is not supported"),
    ("weights NaN", first_weights(np.nan), "weights '1.weight' have NaN or infinite values"),
    ("weights infinite", first_weights(np.inf), "weights '1.weight' have NaN or infinite values"),
    ("bias NaN", first_bias(np.nan), "/1/Gemm_bias' (Add): the bias has NaN or infinite values"),
    ("bias 1e30", first_bias(1e30), "/1/Gemm_bias' (Add): bias too large for the accumulator"),
    ("output inside a layer", inner_output, "output '/1/Gemm_output_0': no integer layer writes it"),
    ("same output twice", output_twice, "the same values; return the tensor once"),
    ("dangling input", dangling_input, "input 'nowhere' of node: name: /1/Gemm OpType: Gemm"),
]


def assert_damaged_build_fails(capsys, tmp_path, source, mutate, expect: str):
    """The model at `source`, damaged by `mutate`, is refused in one line naming `expect`."""
    model = onnx.load(source)
    mutate(model)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    assert_build_fails(capsys, tmp_path, path, expect=expect)


@pytest.mark.parametrize("mutate,expect", [c[1:] for c in MODELS], ids=[c[0] for c in MODELS])
def test_unsupported_model(capsys, tmp_path, mlp_onnx, mutate, expect):
    assert_damaged_build_fails(capsys, tmp_path, mlp_onnx, mutate, expect)


@pytest.mark.parametrize(
    "content,expect",
    [(b"", "not a readable ONNX model (no graph"), (b"device: xc7s15\n", "not a readable ONNX model (DecodeError)")],
    ids=["empty", "YAML"],
)
def test_model_file_that_is_not_onnx(capsys, tmp_path, content, expect):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert "model.onnx: " + expect in assert_build_fails(capsys, tmp_path, path, expect=expect)


def test_model_that_is_a_folder(capsys, tmp_path):
    (tmp_path / "model.onnx").mkdir()
    assert_build_fails(capsys, tmp_path, tmp_path / "model.onnx", expect="model.onnx: a folder, not a model file")


def test_brevitas_per_channel_weights(capsys, tmp_path, brevitas):
    """transforms/quant.py reads per-tensor scales only (one multiplier per layer): per-channel is refused."""
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat

    layers = [
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(4, 3, bias=True, weight_quant=Int8WeightPerChannelFloat, output_quant=Int8ActPerTensorFloat),
    ]
    path = export(calibrated(torch.nn.Sequential(*layers), (4,)), tmp_path / "per_channel.onnx", (1, 4))
    msg = assert_build_fails(capsys, tmp_path, path, expect="per-channel scales (3 of them) are not supported")
    assert "/1/weight_quant/export_handler/Quant" in msg


def test_wide_relu_output_without_a_quantiser(capsys, tmp_path, brevitas):
    """A 16-bit layer ending in a plain ReLU outputs its 34-bit accumulator: refused (the clamp's bounds are
    VHDL integers) instead of failing in GHDL analysis."""
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat

    layers = [
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=16, return_quant_tensor=True),
        qnn.QuantLinear(16, 2, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=16),
        torch.nn.ReLU(),
    ]
    path = export(calibrated(torch.nn.Sequential(*layers), (16,)), tmp_path / "relu16.onnx", (1, 16))
    assert_build_fails(capsys, tmp_path, path, expect="/1/Gemm' (MatMul): its ReLU output needs 34 bits")


# -- encoder constants -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory) -> Path:
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test models")
    case = FuzzCase("encoder", dict(window=3, d_model=4, heads=2, bits=6, po2=True))
    return export(make_model(case), tmp_path_factory.mktemp("model") / "encoder.onnx", (1, *case.in_shape))


def batchnorm_input(index: int, fill: float):
    return lambda m: set_initializer(m, node(m, "BatchNormalization").input[index], fill)


def attention_scale(fill: float):
    """The 1/sqrt(d) constant of the attention scores."""
    return lambda m: set_initializer(m, node(m, "Mul").input[1], fill)


ENCODERS = [
    ("negative variance", batchnorm_input(4, -1.0), "norm1/BatchNormalization' (BatchNormalization): BatchNorm"),
    ("infinite gamma", batchnorm_input(1, np.inf), "must be finite, with a positive variance"),
    ("mean 1e30", batchnorm_input(3, 1e30), "norm1/BatchNormalization' (BatchNormalization): a scale ratio"),
    ("score scale NaN", attention_scale(np.nan), "/encoder/MatMul' (MatMul): rescale ratio must be positive"),
    ("score scale 1e30", attention_scale(1e30), "/encoder/MatMul' (MatMul): rescale ratio 6.25e+28 is too large"),
    ("score scale 1e-30", attention_scale(1e-30), "/encoder/MatMul' (MatMul): rescale ratio 6.25e-32 is too small"),
]


@pytest.mark.parametrize("mutate,expect", [c[1:] for c in ENCODERS], ids=[c[0] for c in ENCODERS])
def test_encoder_constants_the_integer_ops_cannot_hold(capsys, tmp_path, encoder_onnx, mutate, expect):
    assert_damaged_build_fails(capsys, tmp_path, encoder_onnx, mutate, expect)


# -- randomly damaged models ------------------------------------------------------------------------------------
@settings(
    derandomize=True,
    database=None,
    max_examples=30,
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=st.composite(lambda draw: draw_damage(lambda options: draw(st.sampled_from(options))))())
def test_damaged_model_builds_or_fails_in_one_line(tmp_path_factory, mlp_onnx, steps):
    """Whatever the damage (benchmarks/fuzz.py --damaged runs hundreds): a build, or exit 2 with one line
    and nothing left behind; never an internal error."""
    work = tmp_path_factory.mktemp("damaged")
    code, stderr = build_damaged(mlp_onnx.read_bytes(), steps, work)
    errors = [line for line in stderr.splitlines() if line.startswith("qonnx-spartan:")]
    assert "Traceback" not in stderr
    if code == 0:
        assert (work / "out" / "model_int.onnx").is_file() and not errors
    else:
        assert code == EXIT_USER_ERROR and len(errors) == 1, stderr
        assert not (work / "out").exists()
    assert [p.name for p in work.iterdir() if p.name.startswith(".out")] == []


def test_damage_changes_the_model(mlp_onnx):
    """The fuzzer's damage does reach the file: a value step changes an initializer, a byte step a byte."""
    original = mlp_onnx.read_bytes()
    assert damaged(original, [("byte", 7, 1)]) != original
    changed = onnx.load_from_string(damaged(original, [("value", 1, np.nan)]))
    assert any(np.isnan(numpy_helper.to_array(t)).any() for t in changed.graph.initializer)
