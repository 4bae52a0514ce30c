"""Studies: the study file's checks, the content addressing, the store's atomic writes (no Dask needed)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from cli_errors import cli_error

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.study.graph import build_graph
from qonnx_spartan.study.spec import load_study
from qonnx_spartan.study.store import Store, hardware_roots, tree_digest

FORECASTING = Path(__file__).parents[1] / "examples" / "forecasting"
STUDIES = Path(__file__).parents[1] / "examples" / "studies"


def study_file(tmp_path: Path, file: str = "s.yaml", **fields) -> Path:
    doc = {
        "name": "t",
        "model": {"paths": [str(FORECASTING)], "build": "model:build_model", "params": {"features": 3, "heads": 1}},
        "data": {"load": "data:make_dataset"},
        "grid": {"window": [6], "d_model": [8, 16], "bits": [4, 8]},
        "stages": ["export", "estimate", "build"],
    }
    doc.update(fields)
    path = tmp_path / file
    path.write_text(yaml.safe_dump(doc))
    return path


def error(tmp_path: Path, **fields) -> str:
    with pytest.raises(SpartanError) as e:
        load_study(study_file(tmp_path, **fields))
    return str(e.value)


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"stages": ["export", "synth"]}, "field 'stages': stage 'synth' needs stage 'build'"),
        ({"stages": ["export", "estimat"]}, "field 'stages.1': Input should be 'export'"),
        ({"grid": {"window": []}}, "field 'grid': grid key 'window' has no values"),
        ({"seeds": [1, 1]}, "field 'seeds'"),
        ({"trian": {"epochs": 3}}, "field 'trian': unknown field"),
        ({"train": {"epochs": 0}}, "field 'train.epochs': Input should be greater than or equal to 1"),
        ({"search": {"when": "sometimes"}}, "field 'search.when': Input should be 'always', 'unfit'"),
        ({"estimate": {"memory_styles": ["bram"]}}, "field 'estimate.memory_styles'"),
        ({"stages": ["export", "build"]}, "field 'build.memory_style': needed without the estimate stage"),
        ({"stages": ["export", "estimate", "build"], "configs": [{"window": 6, "device": "xc9"}]}, "device"),
        ({"model": {"build": "model:build_model"}, "data": {"load": "nowhere:load"}}, "field 'data.load': no module"),
        ({"model": {"paths": [str(FORECASTING)], "build": "model:nothing"}}, "model.py defines no 'nothing'"),
        ({"model": {"build": "not a reference"}}, "field 'model.build': String should match pattern"),
        ({"name": "a b"}, "field 'name'"),
    ],
)
def test_a_bad_study_file_is_one_line_naming_the_field(tmp_path, fields, says):
    message = error(tmp_path, **fields)
    assert says in message and "\n" not in message
    assert message.startswith(str(tmp_path / "s.yaml"))


def test_the_command_reports_a_bad_study_in_one_line(tmp_path, capsys):
    path = study_file(tmp_path, stages=["export", "synth"])
    line = cli_error(capsys, "study", path, "-o", tmp_path / "out", "--workers", 1)
    assert "field 'stages'" in line
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_the_example_studies_are_valid():
    for path in sorted(STUDIES.glob("*.yaml")):
        study = load_study(path)
        assert study.configurations(), path


def test_the_deployability_study_is_the_papers_grid():
    study = load_study(STUDIES / "deployability.yaml")
    configs = study.configurations()
    assert len(configs) == 27 and len({tuple(sorted(c.items())) for c in configs}) == 27


def graph(tmp_path, hardware="h1", file="s.yaml", **fields):
    return build_graph(load_study(study_file(tmp_path, file=file, **fields)), hardware)


def keys_of(nodes, stage):
    return {k for s, k in nodes if s == stage}


def test_keys_are_the_same_for_the_same_inputs(tmp_path):
    a, rows_a = graph(tmp_path)
    b, rows_b = graph(tmp_path, file="other.yaml")
    assert list(a) == list(b) and rows_a == rows_b
    assert len(keys_of(a, "export")) == 4 and len(a) == 12


def test_a_new_hardware_version_redoes_the_hardware_stages_only(tmp_path):
    a, _ = graph(tmp_path, hardware="h1")
    b, _ = graph(tmp_path, hardware="h2")
    assert keys_of(a, "export") == keys_of(b, "export")
    for stage in ("estimate", "build"):
        assert not keys_of(a, stage) & keys_of(b, stage)


def test_two_studies_share_their_common_configurations(tmp_path):
    a, _ = graph(tmp_path, grid={"window": [6], "d_model": [8, 16], "bits": [4]})
    b, _ = graph(tmp_path, file="b.yaml", grid={"window": [6], "d_model": [16, 32], "bits": [4]})
    shared = {n for n in a if n in b}
    assert {s for s, _ in shared} == {"export", "estimate", "build"} and len(shared) == 3  # d_model 16


def test_what_a_stage_does_not_depend_on_is_not_in_its_key(tmp_path):
    stages = ["export", "estimate", "search", "train", "build"]
    base, _ = graph(tmp_path, stages=stages, seeds=[0, 1])
    # seeds: export, estimate and search are shared; the float model ignores the width (bits)
    assert len(keys_of(base, "export")) == 4 and len(keys_of(base, "search")) == 4
    assert len(keys_of(base, "train_float")) == 2 * 2 and len(keys_of(base, "train")) == 4 * 2
    # a condition decides whether a stage runs, not what it computes
    when, _ = graph(tmp_path, file="w.yaml", stages=stages, seeds=[0, 1], search={"when": "always"})
    assert set(when) == set(base)
    # the budget changes the estimate, not the export
    small, _ = graph(tmp_path, file="b.yaml", stages=stages, seeds=[0, 1], budget={"device": "xc7s6"})
    assert keys_of(small, "export") == keys_of(base, "export")
    assert not keys_of(small, "estimate") & keys_of(base, "estimate")
    assert keys_of(small, "train_float") == keys_of(base, "train_float")


def test_the_model_code_is_in_the_export_key(tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "mine.py").write_text("def build(window):\n    return window\n")
    fields = {"model": {"paths": [str(folder)], "build": "mine:build"}}
    a, _ = graph(tmp_path, **fields)
    (folder / "mine.py").write_text("def build(window):\n    return window + 0\n")
    b, _ = graph(tmp_path, **fields)
    assert not keys_of(a, "export") & keys_of(b, "export")


def test_the_hardware_version_covers_the_templates(tmp_path):
    assert any((root / "top.vhd.j2").is_file() for root in hardware_roots())
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "top.vhd.j2").write_text("entity a")
    before = tree_digest([tmp_path])
    (tmp_path / "t" / "top.vhd.j2").write_text("entity b")
    assert tree_digest([tmp_path]) != before
    (tmp_path / "t" / "notes.txt").write_text("not hardware")
    assert tree_digest([tmp_path]) != before and tree_digest([tmp_path]) == tree_digest([tmp_path])


def test_a_failed_stage_leaves_no_entry(tmp_path):
    store = Store(tmp_path / "store")

    def make(folder: Path) -> dict:
        (folder / "half.onnx").write_text("half")
        raise KeyboardInterrupt  # a stage stopped in the middle

    with pytest.raises(KeyboardInterrupt):
        store.put("build", "ab" * 16, make)
    assert store.get("build", "ab" * 16) is None
    assert store.entries() == {} and not any((tmp_path / "store" / ".tmp").iterdir())


def test_a_finished_entry_is_kept_and_read_back(tmp_path):
    store = Store(tmp_path / "store")
    first = store.put("estimate", "cd" * 16, lambda folder: {"LUT": 1})
    again = store.put("estimate", "cd" * 16, lambda folder: {"LUT": 2})  # finished elsewhere meanwhile
    assert first["LUT"] == again["LUT"] == 1 == store.get("estimate", "cd" * 16)["LUT"]
    assert json.loads((store.entry("estimate", "cd" * 16) / "result.json").read_text())["LUT"] == 1
    assert store.entries() == {"estimate": 1}


def test_the_smoke_study_is_estimate_and_build():
    study = load_study(STUDIES / "smoke.yaml")
    assert set(study.stages) == {"export", "estimate", "build"} and len(study.configurations()) <= 6


def test_a_study_file_in_another_folder_finds_its_model(tmp_path):
    text = (STUDIES / "smoke.yaml").read_text().replace("../forecasting", str(FORECASTING))
    (tmp_path / "elsewhere.yaml").write_text(textwrap.dedent(text))
    assert load_study(tmp_path / "elsewhere.yaml").model.paths == [FORECASTING.resolve()]


def test_the_estimator_coefficients_are_in_the_hardware_keys(tmp_path):
    from qonnx_spartan.coefficients import Coefficients

    Coefficients.default().save(tmp_path / "c.json")
    a, _ = graph(tmp_path, budget={"estimator": "c.json"})
    data = json.loads((tmp_path / "c.json").read_text())
    data["tool"] = "another tool"
    (tmp_path / "c.json").write_text(json.dumps(data))
    b, _ = graph(tmp_path, budget={"estimator": "c.json"})
    assert keys_of(a, "export") == keys_of(b, "export") and not keys_of(a, "estimate") & keys_of(b, "estimate")
    assert "field 'budget.estimator'" in error(tmp_path, budget={"estimator": "missing.json"})


@pytest.mark.parametrize(
    "fits, searched, expected",
    [
        # (all-LUT fits, BRAM fits), search fits -> unfit, fits, made_deployable
        ((True, True), None, (False, True, False)),
        ((False, True), None, (False, True, True)),
        ((False, False), True, (True, True, True)),
        ((False, False), False, (True, False, False)),
    ],
)
def test_when_a_conditional_stage_runs(fits, searched, expected):
    from qonnx_spartan.study.stages import holds

    up = {"estimate": {"styles": {"distributed": {"fits": fits[0]}, "budget": {"fits": fits[1]}}}}
    if searched is not None:
        up["search"] = {"fits": searched}
    assert tuple(holds(w, up) for w in ("unfit", "fits", "made_deployable")) == expected
    assert holds("always", {})


def test_a_skipped_stage_says_why_and_stores_nothing(tmp_path):
    from qonnx_spartan.study.stages import run_stage

    study = load_study(study_file(tmp_path, stages=["export", "estimate", "build"], build={"when": "made_deployable"}))
    spec = study.model_dump(mode="json")
    fits = {"styles": {"distributed": {"fits": True}, "budget": {"fits": True}}}
    result = run_stage("build", str(tmp_path / "store"), "ef" * 16, spec, {}, None, {"estimate": fits, "export": {}})
    assert result == {"skipped": "build.when is made_deployable"}
    result = run_stage("build", str(tmp_path / "store"), "ef" * 16, spec, {}, None, {"estimate": {"skipped": "x"}})
    assert "no estimate" in result["skipped"] and Store(tmp_path / "store").entries() == {}


def test_a_float_model_shared_by_widths_is_trained_when_any_width_needs_it(tmp_path, monkeypatch):
    from qonnx_spartan.study import stages
    from qonnx_spartan.study.stages import run_stage

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "train_float", lambda *args: {"trained": True})

    nodes, _ = graph(tmp_path, stages=["export", "estimate", "train"], train={"when": "made_deployable"})
    shared = [n for (s, _), n in nodes.items() if s == "train_float"]
    assert len(shared) == 2 and all({"estimate", "estimate|1"} <= set(n.reads) for n in shared)  # bits 4 and 8
    order = list(nodes)
    for i, node in enumerate(nodes.values()):  # a runner submits each node after what it reads
        assert all(order.index((name.partition("|")[0], key)) < i for name, key in node.reads.items())
    study = load_study(study_file(tmp_path, stages=["export", "estimate", "train", "build"]))
    spec, store = study.model_dump(mode="json"), str(tmp_path / "store")
    fits = {"styles": {"distributed": {"fits": True}, "budget": {"fits": True}}}
    deployable = {"styles": {"distributed": {"fits": False}, "budget": {"fits": True}}}
    spec["train"]["when"] = "made_deployable"
    # judged on the first width alone (fits as it is) the float model would be skipped, and with it the QAT
    # model of the width that needed it; judged on each width's own estimate, it runs
    ran = run_stage("train_float", store, "ab" * 16, spec, {}, 0, {"estimate": fits, "estimate|1": deployable})
    assert ran["trained"] and not ran["reused"]
    skipped = run_stage("train_float", store, "ab" * 16, spec, {}, 0, {"estimate": fits, "estimate|1": fits})
    assert skipped == {"skipped": "train_float.when is made_deployable"}
    # a seed's design is its trained model's: without one the build does not fall back to the untrained export
    spec["build"]["when"] = "always"
    built = run_stage("build", store, "cd" * 16, spec, {}, 0, {"estimate": fits, "export": {}, "train": skipped})
    assert built == {"skipped": "no train"}


def test_synthesis_of_some_seeds_only(tmp_path):
    from qonnx_spartan.study.stages import run_stage

    stages = ["export", "estimate", "train", "build", "synth"]
    every, _ = graph(tmp_path, stages=stages, seeds=[0, 1])
    some, _ = graph(tmp_path, file="b.yaml", stages=stages, seeds=[0, 1], synth={"seeds": [0]})
    assert set(every) == set(some)  # which seeds are synthesised is not in any key
    study = load_study(study_file(tmp_path, stages=stages, seeds=[0, 1], synth={"seeds": [0]}))
    result = run_stage("synth", str(tmp_path / "store"), "ab" * 16, study.model_dump(mode="json"), {}, 1, {})
    assert result == {"skipped": "synth.seeds is [0]"}


def test_the_training_code_is_in_the_training_keys_only(tmp_path):
    estimate, _ = graph(tmp_path, stages=["export", "estimate", "search"])
    trained, _ = graph(tmp_path, file="t.yaml", stages=["export", "estimate", "search", "train"])
    for stage in ("export", "estimate", "search"):  # running training later reuses them
        assert keys_of(estimate, stage) == keys_of(trained, stage)
