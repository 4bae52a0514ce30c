"""Random small models (MLPs, attention cores, encoders; 2 to 8 bits, power-of-two or float scales, any
memory style and lanes) through the whole flow: GHDL bit-exact against the integer reference, and the
reference of MLPs and attention cores as close to Brevitas as the model tests require.  A fixed,
derandomised set of examples, so CI runs the same models every time; benchmarks/fuzz.py runs hundreds from
the same generator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from fuzz_models import brevitas_bound, draw_case, run_case
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

EXAMPLES = 20


@st.composite
def cases(draw):
    return draw_case(lambda options: draw(st.sampled_from(list(options))))


@settings(
    derandomize=True,
    database=None,
    max_examples=EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # explaining a failure costs minutes of builds
    # the fixtures only check that GHDL and Brevitas are installed; each example has its own folder
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_random_model_bit_exact(case, ghdl, brevitas):
    note(case.label())
    with tempfile.TemporaryDirectory(prefix="qs_fuzz_") as tmp:
        result = run_case(case, Path(tmp))
    assert result.vectors > 0
    assert result.bit_exact, np.c_[result.hardware, result.reference][:4]
    bound = brevitas_bound(case)
    assert bound is None or result.brevitas_lsb <= bound, result.brevitas_lsb
