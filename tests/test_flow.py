"""The FINN-style flow: ordered named steps, user callables, start/stop, saved intermediate models."""

from __future__ import annotations

import json

import pytest
from brevitas_models import export, make_mlp
from qonnx.core.modelwrapper import ModelWrapper

from qonnx_spartan.budget import Budget
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.embedded import model_path
from qonnx_spartan.flow import DEFAULT_STEPS, BuildConfig, build, estimate_only


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    pytest.importorskip("brevitas", reason="brevitas is needed to export the test model")
    return export(make_mlp([4, 5, 2], 6), tmp_path_factory.mktemp("m") / "mlp.onnx", (1, 4))


def test_default_build_writes_everything(tmp_path, mlp):
    out = tmp_path / "out"
    build(BuildConfig(model=mlp, output_dir=out))
    assert (out / "model_int.onnx").is_file() and (out / "hdl" / "files.txt").is_file()
    assert (out / "sim" / "qs_top_tb.vhd").is_file()
    saved = sorted(p.name for p in (out / "intermediate_models").iterdir())
    assert saved == [f"{k:02d}_{name}.onnx" for k, name in enumerate(DEFAULT_STEPS)]
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert set(report["total"]) == {"LUT", "LUTRAM", "FF", "BRAM18", "DSP"}
    assert report["device"] == "xc7s15" and report["cycles"] > 0
    assert set(report["layers"]) >= {n.name for n in ModelWrapper(str(out / "model_int.onnx")).graph.node}


def test_custom_callable_step_and_stop_step(tmp_path, mlp):
    seen = []

    def count_nodes(model, cfg, ctx):
        seen.append(len(model.graph.node))
        return model

    steps = ["tidy", "lower", count_nodes, "memory_style", "estimate", "generate_hdl"]
    out = tmp_path / "out"
    build(BuildConfig(model=mlp, output_dir=out, steps=steps, stop_step="estimate", budget=Budget(device="xc7s25")))
    assert seen == [2]  # two IntLinear layers after lowering
    assert not (out / "hdl").exists()
    assert json.loads((out / "report" / "estimate.json").read_text())["device"] == "xc7s25"


def test_start_step_takes_an_intermediate_model(tmp_path, mlp):
    first = tmp_path / "first"
    build(BuildConfig(model=mlp, output_dir=first, stop_step="lower"))
    second = tmp_path / "second"
    build(
        BuildConfig(
            model=first / "intermediate_models" / f"{DEFAULT_STEPS.index('lower'):02d}_lower.onnx",
            output_dir=second,
            start_step="memory_style",
            memory_style="block",
        )
    )
    assert (second / "hdl" / "qs_top.vhd").is_file()
    assert 'STYLE => "block"' in (second / "hdl" / "qs_top.vhd").read_text()


def test_unknown_step_is_a_clear_error(tmp_path, mlp):
    with pytest.raises(SpartanError, match="unknown step 'synthesise'"):
        build(BuildConfig(model=mlp, output_dir=tmp_path / "o", steps=["tidy", "synthesise"]))
    with pytest.raises(SpartanError, match="step 'nope' is not among"):
        build(BuildConfig(model=mlp, output_dir=tmp_path / "o", stop_step="nope"))
    assert not (tmp_path / "o").exists()


def test_build_writes_a_vivado_project_and_annotates_estimates(tmp_path, mlp):
    out = tmp_path / "out"
    build(BuildConfig(model=mlp, output_dir=out, budget=Budget(device="xc7s25", clock_mhz=125)))
    tcl = (out / "vivado" / "build.tcl").read_text()
    assert "set part xc7s25csga324-1" in tcl and "-period 8.000" in tcl
    for source in (out / "hdl" / "files.txt").read_text().split():
        assert f"add_files -norecurse ../hdl/{source}" in tcl
    assert "report_utilization -hierarchical" in tcl and "report_timing_summary" in tcl

    from qonnx.custom_op.registry import getCustomOp

    model = ModelWrapper(str(out / "model_int.onnx"))
    report = json.loads((out / "report" / "estimate.json").read_text())
    assert json.loads(model.get_metadata_prop("res_total_estimate")) == report["total"]
    assert int(model.get_metadata_prop("cycles_estimate")) == report["cycles"]
    for node in model.graph.node:
        op = getCustomOp(node)
        layer = report["layers"][node.name]
        assert json.loads(op.get_nodeattr("res_estimate"))["LUT"] == layer["LUT"]
        assert op.get_nodeattr("cycles_estimate") == layer["cycles"]

    build(BuildConfig(model=mlp, output_dir=out, part="xc7s15csga225-1"))
    assert "set part xc7s15csga225-1" in (out / "vivado" / "build.tcl").read_text()


def test_estimate_command_agrees_with_build(tmp_path, mlp, capsys):
    from qonnx_spartan.cli import main

    out = tmp_path / "out"
    build(BuildConfig(model=mlp, output_dir=out))
    capsys.readouterr()
    assert main(["estimate", str(mlp), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "report" / "estimate.json").read_text())
    assert not any(tmp_path.glob("qs_estimate_*"))


@pytest.mark.parametrize("order", ["as exported", "reversed", "shuffled"])
def test_the_fast_cleanup_leaves_the_model_as_qonnx_does(order):
    """transforms/cleanup.py replaces qonnx's graph scans with lookups: on the forecaster's QONNX graph in
    any node order, and on a graph whose two nodes share an initializer, the model it leaves is qonnx's,
    byte for byte (new tensor names are random in qonnx: both runs start from the same seed)."""
    import copy
    import random
    from importlib.resources import files

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.transforms.cleanup import cleanup

    shared = helper.make_graph(
        [
            helper.make_node("Add", ["t", "c"], ["y"], name="second"),
            helper.make_node("Add", ["x", "c"], ["t"], name="first"),
        ],
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "c")],
    )
    models = [load_model(files("qonnx_spartan") / "data" / "forecaster.onnx"), ModelWrapper(helper.make_model(shared))]
    for model in models:
        nodes = list(model.graph.node)
        if order == "reversed":
            nodes.reverse()
        elif order == "shuffled":
            random.Random(1).shuffle(nodes)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        theirs, ours = copy.deepcopy(model), copy.deepcopy(model)
        random.seed(5)
        theirs.cleanup()
        random.seed(5)
        ours = cleanup(ours)
        assert ours.model.SerializeToString() == theirs.model.SerializeToString()
    assert [n.name for n in ours.graph.node] == ["first", "second"]  # sorted
    assert len(models[1].graph.initializer) == 1 and len(ours.graph.initializer) == 2  # "c" was shared


def test_the_fast_wrap_and_shape_inference_leave_the_model_as_qonnx_does():
    """transforms/cleanup.py's `wrap` and `infer_shapes` find initializers without a shape by lookup: on
    the forecaster's QONNX graph (Quant custom ops included) with its shapes stripped, the models they
    leave are qonnx's, byte for byte."""
    import copy
    from importlib.resources import files

    import onnx
    from qonnx.transformation.infer_shapes import InferShapes

    from qonnx_spartan.transforms.cleanup import infer_shapes, wrap

    proto = onnx.load(str(files("qonnx_spartan") / "data" / "forecaster.onnx"))
    del proto.graph.value_info[:]  # every initializer and intermediate tensor without a shape
    theirs, ours = ModelWrapper(copy.deepcopy(proto)), wrap(copy.deepcopy(proto))
    assert len(ours.graph.value_info) > 0
    assert ours.model.SerializeToString() == theirs.model.SerializeToString()
    theirs = theirs.transform(InferShapes(), make_deepcopy=False, cleanup=False)
    ours = infer_shapes(ours)
    assert len(ours.graph.value_info) > len(theirs.graph.initializer)
    assert ours.model.SerializeToString() == theirs.model.SerializeToString()


def test_the_fast_constant_folding_leaves_the_model_as_qonnx_does():
    """transforms/cleanup.py's `fold_constants` runs qonnx's FoldConstants only when a node can be folded:
    on the forecaster's graph (nothing to fold, the Quants excluded) and on a graph with a sum of two
    constants, the model it leaves is qonnx's, byte for byte."""
    import copy
    from importlib.resources import files

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.transformation.fold_constants import FoldConstants

    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.transforms.cleanup import fold_constants, infer_shapes

    folded = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["c"], name="constant"),
            helper.make_node("Mul", ["x", "c"], ["y"], name="dynamic"),
        ],
        "folded",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.full((1, 4), v, dtype=np.float32), n) for n, v in (("a", 1.0), ("b", 2.0))],
    )
    models = [load_model(files("qonnx_spartan") / "data" / "forecaster.onnx"), ModelWrapper(helper.make_model(folded))]
    models = [infer_shapes(model) for model in models]  # as Tidy folds them
    for model, nodes_left in zip(models, (len(models[0].graph.node), 1)):
        theirs = copy.deepcopy(model).transform(FoldConstants(exclude_op_types=["Quant"]), cleanup=False)
        ours = fold_constants(copy.deepcopy(model), exclude_op_types=["Quant"])
        assert len(ours.graph.node) == nodes_left
        assert ours.model.SerializeToString() == theirs.model.SerializeToString()


def test_the_default_placement_is_the_budget_s_when_it_overflows(tmp_path):
    """"auto" puts the embedded model's larger memories in block RAM (5 BRAM18); with a budget of one, that
    overflows, and the default build places the memories as "budget" does: it fits, where it was refused."""
    auto = estimate_only(BuildConfig(model=model_path(), output_dir=tmp_path / "a"))
    assert auto["fits"] and auto["total"]["BRAM18"] > 1
    capped = Budget(caps={"BRAM18": 1})
    report = estimate_only(BuildConfig(model=model_path(), output_dir=tmp_path / "b", budget=capped))
    assert report["fits"], report["overflows"]
    assert report["total"]["BRAM18"] <= 1


def test_the_budget_placement_leaves_the_fitted_resources_headroom(tmp_path):
    """A design whose LUTs fit the limit but not what is spendable (Budget.spendable: the estimate is within a
    few percent of synthesis) has memories moved to block RAM until they are: block RAM left empty is
    wasted, a LUT figure at 99 % of the device is not a safe margin."""
    config = dict(model=model_path(), output_dir=tmp_path / "x", lanes=1)
    distributed = estimate_only(BuildConfig(**config, memory_style="distributed"))
    luts = distributed["total"]["LUT"]
    budget = Budget(caps={"LUT": luts + 10})
    assert budget.spendable()["LUT"] < luts <= budget.limits()["LUT"]
    placed = estimate_only(BuildConfig(**config, memory_style="budget", budget=budget))
    assert placed["fits"] and placed["total"]["BRAM18"] > 0
    assert placed["total"]["LUT"] <= budget.spendable()["LUT"] < luts
