"""The op corpus (issue #16, tests/frontend_ops.py): table functions, LayerNorm and Conv1d as people write
them, each exported with `dynamo=False` and with torch's default exporter and built through
`qonnx-spartan build`: GHDL bit-exact against the integer reference on 16 vectors and within 3 output LSBs
of Brevitas, or refused in one line that names the node and says what to write instead.

Each (model, exporter) is exported, built and simulated once per session, as in tests/test_frontend.py.
"""

from __future__ import annotations

import pytest
from frontend_models import EXPORTERS, check_measured, library_text, run_case
from frontend_ops import OP_CORPUS, OP_REFUSALS

from qonnx_spartan.cli import EXIT_USER_ERROR

CASES = {c.name: c for c in OP_CORPUS} | {c.name: c for c, _ in OP_REFUSALS}
REFUSAL_TEXT = {c.name: text for c, text in OP_REFUSALS}
PAIRS = [(c.name, e) for c in OP_CORPUS for e in EXPORTERS]
REFUSAL_PAIRS = [(c.name, e) for c, _ in OP_REFUSALS for e in EXPORTERS]


@pytest.fixture(scope="session")
def op_outcome(tmp_path_factory):
    """(case name, exporter) -> its Outcome, computed on first use (one model, export, build, GHDL run)."""
    work = tmp_path_factory.mktemp("frontend_ops")
    models, outcomes = {}, {}

    def get(name: str, exporter: str, simulate: bool = True):
        key = (name, exporter)
        if key not in outcomes:
            if name not in models:
                models[name] = CASES[name].model()
            outcomes[key] = run_case(CASES[name], exporter, work / name, model=models[name], simulate=simulate)
        return outcomes[key]

    return get


@pytest.mark.parametrize("name,exporter", PAIRS, ids=[f"{n}-{e}" for n, e in PAIRS])
def test_op_corpus_model_is_bit_exact_and_close_to_brevitas(name, exporter, op_outcome, brevitas, ghdl):
    o = op_outcome(name, exporter)
    assert o.export_error is None, f"{name} does not export with the {exporter} exporter: {o.export_error}"
    assert o.cli.built, f"{name} ({exporter}) is refused: {o.cli.first_error}"
    assert not library_text(o.cli.err), o.cli.err
    assert o.sim_error is None, f"{name} ({exporter}) built, but the comparison failed: {o.sim_error}"
    check_measured(o)


@pytest.mark.parametrize("name,exporter", REFUSAL_PAIRS, ids=[f"{n}-{e}" for n, e in REFUSAL_PAIRS])
def test_op_refusal_is_one_line_naming_the_node_and_what_to_write(name, exporter, op_outcome, brevitas):
    o = op_outcome(name, exporter, simulate=False)
    assert o.export_error is None, f"{name} does not export with the {exporter} exporter: {o.export_error}"
    run = o.cli
    assert not run.built, f"{name} ({exporter}) builds now: move it to OP_CORPUS"
    lines = [line for line in run.err.splitlines() if line.startswith("qonnx-spartan:")]
    assert run.code == EXIT_USER_ERROR, f"exit {run.code}: {run.first_error}"
    assert len(lines) == 1 and lines[0].startswith("qonnx-spartan: error: node '"), run.err
    assert not library_text(run.err), f"a library's message reaches the user: {library_text(run.err)}"
    assert REFUSAL_TEXT[name] in lines[0], lines[0]
