"""The front-end corpus (issue #15, tests/frontend_models.py): Brevitas models written as people write them,
each exported with `dynamo=False` and with torch's default exporter, built through `qonnx-spartan build`,
GHDL bit-exact against the integer reference on 16 vectors, and within 3 output LSBs of Brevitas.

Each (model, exporter) is exported, built and simulated once per session (`corpus_outcome`); the tests
below read that one outcome, so a failure names the model and the exporter and says what the build said.
"""

from __future__ import annotations

import numpy as np
import pytest
from frontend_models import (
    CASES,
    CORPUS,
    EXPORT_FAILURES,
    REFUSALS,
    EXPORTERS,
    check_measured,
    export,
    library_text,
    run_case,
)

from qonnx_spartan.cli import EXIT_USER_ERROR

PAIRS = [(c.name, e) for c in CORPUS for e in EXPORTERS]
IDS = [f"{n}-{e}" for n, e in PAIRS]
CLI_PAIRS = PAIRS + [(c.name, e) for c in REFUSALS for e in EXPORTERS]
CLI_IDS = [f"{n}-{e}" for n, e in CLI_PAIRS]


@pytest.fixture(scope="session")
def corpus_outcome(tmp_path_factory):
    """(case name, exporter) -> its Outcome, computed on first use: the calibrated model is made once per
    case, the export, the CLI build and the one GHDL run once per pair."""
    work = tmp_path_factory.mktemp("frontend")
    models, outcomes = {}, {}

    def get(name: str, exporter: str):
        key = (name, exporter)
        if key not in outcomes:
            case = CASES[name]
            if name not in models:
                models[name] = case.model()
            outcomes[key] = run_case(case, exporter, work / name, model=models[name])
        return outcomes[key]

    return get


# Models the corpus test knows to fail, each with what is wrong (printed with the skip): none today.
OPEN_FAILURES: dict[str, str] = {}


def open_failure(name: str) -> str | None:
    return next((why for key, why in OPEN_FAILURES.items() if name.startswith(key)), None)


@pytest.mark.parametrize("name,exporter", PAIRS, ids=IDS)
def test_corpus_model_is_bit_exact_and_close_to_brevitas(name, exporter, corpus_outcome, brevitas, ghdl):
    if open_failure(name):
        pytest.skip(f"{name} ({exporter}): {open_failure(name)}")
    o = corpus_outcome(name, exporter)
    if o.export_error is not None and (name, exporter) in EXPORT_FAILURES:
        pytest.skip(f"torch's {exporter} exporter fails on {name} (tested below): {o.export_error}")
    if o.export_error is not None:
        pytest.fail(f"{name} does not export with the {exporter} exporter: {o.export_error}")
    if not o.cli.built:
        pytest.fail(f"{name} ({exporter}) is refused: {o.cli.first_error}")
    if o.sim_error is not None:
        pytest.fail(f"{name} ({exporter}) built, but the comparison failed: {o.sim_error}")
    check_measured(o)


@pytest.mark.parametrize("name,exporter", CLI_PAIRS, ids=CLI_IDS)
def test_cli_says_one_clean_line_or_builds(name, exporter, corpus_outcome, brevitas, ghdl):
    """The whole corpus through `qonnx-spartan build`: a model either builds, or is refused with exit 2 and
    one `qonnx-spartan: error:` line free of numpy/onnx/qonnx messages and tracebacks."""
    o = corpus_outcome(name, exporter)
    if o.export_error is not None:
        pytest.skip(f"the {exporter} exporter fails on {name}: {o.export_error}")
    run = o.cli
    if run.built:
        assert run.out.startswith("built "), run.out
        assert not library_text(run.err), run.err
        return
    lines = [line for line in run.err.splitlines() if line.startswith("qonnx-spartan:")]
    assert run.code == EXIT_USER_ERROR, f"exit {run.code}: {run.first_error}"
    assert len(lines) == 1 and lines[0].startswith("qonnx-spartan: error: "), run.err
    assert not library_text(run.err), f"a library's message reaches the user: {library_text(run.err)}"
    names = ("node '", "the model has", "does not fit the budget")
    assert any(n in lines[0] for n in names), f"the refusal names no node: {lines[0]}"


@pytest.mark.parametrize("name,exporter", sorted(EXPORT_FAILURES), ids=[f"{n}-{e}" for n, e in sorted(EXPORT_FAILURES)])
def test_known_export_failures_are_torchs(tmp_path, name, exporter, brevitas):
    """The pairs the corpus test skips fail inside torch.export, with the message recorded; when torch
    exports them, this fails and they join the corpus."""
    case = CASES[name]
    with pytest.raises(Exception) as raised:
        export(case.model(), case, exporter, tmp_path / "m.onnx")
    assert EXPORT_FAILURES[(name, exporter)] in str(raised.value)


def test_library_text_check_can_fail():
    assert library_text(
        "qonnx-spartan: error: input operand has more dimensions than allowed by the axis remapping"
    )
    assert library_text("Traceback (most recent call last):")
    assert library_text("qonnx-spartan: internal error: KeyError: 'x' (run with --debug for details)")
    assert not library_text(
        "qonnx-spartan: error: node '/Add' (Add): its input '/fc2/Add_output_0' is not re-quantised; "
        "put a quantised activation (QuantIdentity, QuantReLU) after node '/fc2/Add' (Add)"
    )


def test_corpus_covers_the_issue(brevitas):
    """At least 15 models; QuantMultiheadAttention in all four settings; 1, 2 and 4 heads; 2 to 8 bits;
    1 to 3 encoder layers; power-of-two and float scales; several outputs; both exporters."""
    import brevitas.nn as qnn
    import torch

    assert len(CORPUS) >= 15
    assert set(EXPORTERS) == {"torchscript", "dynamo"}
    mha_settings, heads, bits, layers, po2, float_scales = set(), set(), set(), set(), False, False
    several_outputs = False
    for case in CORPUS:
        model = case.make(case.seed)
        for module in model.modules():
            if isinstance(module, qnn.QuantMultiheadAttention):
                mha_settings.add((module.batch_first, module.in_proj is not None))
                heads.add(module.num_heads)
            if hasattr(module, "heads") and hasattr(module, "d_head"):
                heads.add(module.heads)
            if isinstance(module, qnn.QuantLinear):
                bits.add(int(module.quant_weight().bit_width))
                po2 = po2 or _po2(module)
                float_scales = float_scales or not _po2(module)
            if isinstance(getattr(module, "layers", None), torch.nn.ModuleList):
                layers.add(len(module.layers))
        with torch.no_grad():
            y = model.eval()(torch.randn(2, *case.in_shape))
        several_outputs = several_outputs or isinstance(y, tuple)
    assert mha_settings == {(True, True), (True, False), (False, True), (False, False)}
    assert {1, 2, 4} <= heads
    assert set(range(2, 9)) <= bits, sorted(bits)
    assert {1, 2, 3} <= layers
    assert po2 and float_scales and several_outputs


def _po2(linear) -> bool:
    """Whether a QuantLinear's weight scale is a power of two."""
    scale = float(linear.quant_weight().scale.detach().reshape(-1)[0])
    return bool(np.isclose(np.log2(scale), np.round(np.log2(scale))))


#: The corpus model synthesised in the tests (benchmarks/frontend.py --synth does three): attention with
#: the softmax, products of two activations, heads by view, and an unquantised head.
SYNTH_MODEL = "matmul_attention_2heads_5bit"


def test_corpus_model_synthesises_as_estimated(corpus_outcome, brevitas, ghdl, yosys):
    """GHDL + yosys on a corpus build: LUT and FF within 3 % of the estimate; LUTRAM, BRAM18, DSP and the
    cycles (GHDL's count) exactly as estimated."""
    from frontend_models import estimate_totals

    from qonnx_spartan.synth import synthesise

    o = corpus_outcome(SYNTH_MODEL, "torchscript")
    if o.measured is None:
        pytest.fail(f"{SYNTH_MODEL} is not built and simulated: {o.cli.first_error if o.cli else o.export_error}")
    estimate = estimate_totals(o.build_dir)
    synth = synthesise(o.build_dir)["total"]
    for resource in ("LUT", "FF"):
        assert abs(estimate["total"][resource] - synth[resource]) <= 0.03 * synth[resource], (resource, synth, estimate)
    for resource in ("LUTRAM", "BRAM18", "DSP"):
        assert estimate["total"][resource] == synth[resource], (resource, synth, estimate["total"])
    assert estimate["cycles"] == o.measured.cycles
