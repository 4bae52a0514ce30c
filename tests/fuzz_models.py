"""Random small Brevitas models, built and simulated in GHDL against the integer reference; and random
damage to a model file.

One generator for the CI fuzz tests (tests/test_fuzz.py, tests/test_bad_inputs.py: hypothesis, derandomised)
and the benchmark (benchmarks/fuzz.py, hundreds of seeded cases): `draw_case(choose)` and
`draw_damage(choose)` take every decision through `choose(options)`, which hypothesis backs with
`sampled_from` (so a failure shrinks towards the first, simplest option) and the benchmark with a seeded
numpy generator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: the models: an MLP (tests/brevitas_models.make_mlp), the attention core without softmax
#: (make_attention_core) and the forecasting encoder (examples/forecasting/model.py build_model)
KINDS = ("mlp", "mlp", "attention", "encoder")
STYLES = ("auto", "block", "distributed")
LANES = (1, 2, 3, "auto")
BITS = tuple(range(2, 9))
FEATURES = 3  # inputs per time step of the encoder
VECTORS = 16  # random input vectors per model, besides the extreme ones

Choose = Callable[[Sequence], object]


@dataclass(frozen=True)
class FuzzCase:
    kind: str
    params: dict = field(hash=False)
    memory_style: str = "auto"
    lanes: int | str = 1
    input_scale: float = 1.0  # standard deviation of the random float inputs
    seed: int = 0

    def label(self) -> str:
        """One line that rebuilds the case: FuzzCase(**fields) in the benchmark's mismatch table."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return (
            f"{self.kind}({params}) style={self.memory_style} lanes={self.lanes} "
            f"x_scale={self.input_scale} seed={self.seed}"
        )

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input item (no batch)."""
        p = self.params
        if self.kind == "mlp":
            return (p["sizes"][0],)
        if self.kind == "attention":
            return (p["window"], p["d_model"])
        return (p["window"], FEATURES)


def draw_case(choose: Choose) -> FuzzCase:
    """A random case; every choice goes through `choose`, simplest option first."""
    kind = choose(KINDS)
    bits, po2 = choose(BITS), choose((True, False))
    if kind == "mlp":
        layers = choose((1, 2, 3))
        sizes = [choose(range(1, 17))] + [choose(range(1, 33)) for _ in range(layers - 1)] + [choose(range(1, 9))]
        params = dict(sizes=sizes, bits=bits, po2=po2, bias=choose((True, False)), out_quant=choose((True, False)))
    else:
        heads = choose((1, 2, 4))
        d_model = heads * choose((1, 2, 3, 4))
        window = choose(range(1, 7) if kind == "attention" else range(2, 7))
        params = dict(window=window, d_model=d_model, heads=heads, bits=bits, po2=po2)
    return FuzzCase(
        kind=kind,
        params=params,
        memory_style=choose(STYLES),
        lanes=choose(LANES),
        input_scale=choose((1.0, 0.25, 4.0)),
        seed=choose(range(1000)),
    )


def numpy_chooser(rng: np.random.Generator) -> Choose:
    return lambda options: options[int(rng.integers(len(options)))]


def make_model(case: FuzzCase):
    """The calibrated Brevitas module of a case."""
    from brevitas_models import calibrated, make_attention_core, make_mlp

    p = case.params
    if case.kind == "mlp":
        return make_mlp(p["sizes"], p["bits"], po2=p["po2"], bias=p["bias"], out_quant=p["out_quant"], seed=case.seed)
    if case.kind == "attention":
        return make_attention_core(p["window"], p["d_model"], p["heads"], p["bits"], po2=p["po2"], seed=case.seed)
    import torch
    from model import build_model

    torch.manual_seed(case.seed)
    model = build_model(p["window"], FEATURES, p["d_model"], p["heads"], p["bits"], po2=p["po2"])
    return calibrated(model, case.in_shape, steps=12, batch=32)


def input_vectors(case: FuzzCase) -> np.ndarray:
    """Random float inputs, then inputs that saturate the input quantiser: all low, all high, alternating."""
    rng = np.random.default_rng(case.seed)
    x = rng.normal(size=(VECTORS, *case.in_shape)) * case.input_scale
    alternating = np.where(np.arange(int(np.prod(case.in_shape))) % 2, 1e3, -1e3).reshape(case.in_shape)
    extremes = np.stack([np.full(case.in_shape, -1e3), np.full(case.in_shape, 1e3), alternating])
    return np.concatenate([x, extremes]).astype(np.float32)


@dataclass
class CaseResult:
    case: FuzzCase
    vectors: int = 0
    mismatches: int = 0  # vectors whose outputs differ between GHDL and the integer reference
    brevitas_lsb: float = 0.0  # worst requantised tensor's distance to Brevitas, in its LSBs
    layers: int = 0
    seconds: float = 0.0
    hardware: np.ndarray | None = None
    reference: np.ndarray | None = None

    @property
    def bit_exact(self) -> bool:
        return self.vectors > 0 and self.mismatches == 0


def run_case(case: FuzzCase, work: Path, fidelity_vectors: int = 2) -> CaseResult:
    """Export, build (flow.build on a device with room for every case), simulate in GHDL against the
    integer reference, and measure the reference's distance to the exported graph on a few inputs."""
    from brevitas_models import export
    from fidelity import requantised_tensor_lsb_errors

    from qonnx_spartan.budget import Budget
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.simulation import simulate_build
    from qonnx_spartan.transforms import Tidy

    started = time.perf_counter()
    onnx_path = export(make_model(case), work / "model.onnx", (1, *case.in_shape))
    out = work / "build"
    config = BuildConfig(
        model=onnx_path,
        output_dir=out,
        memory_style=case.memory_style,
        lanes=case.lanes,
        budget=Budget(device="xc7s50"),
    )
    lowered = build(config)
    x = input_vectors(case)
    report = simulate_build(out, x)
    probe = np.concatenate([x[:fidelity_vectors], x[-1:]])  # random ones and the alternating extreme
    errors = requantised_tensor_lsb_errors(load_model(onnx_path).transform(Tidy()), lowered, probe)
    return CaseResult(
        case=case,
        vectors=report.vectors,
        mismatches=report.mismatches,
        brevitas_lsb=max(errors.values(), default=0.0),
        layers=len(lowered.graph.node),
        seconds=time.perf_counter() - started,
        hardware=report.hardware,
        reference=report.reference,
    )


def brevitas_bound(case: FuzzCase) -> float | None:
    """How far (LSBs) every requantised tensor of the reference may be from the exported graph: equal with
    power-of-two scales, within 1 LSB otherwise.  None for the encoder: its softmax turns a 1-LSB
    difference of the scores into several LSBs of probability, so it is measured, not bounded
    (docs/reliability.md)."""
    if case.kind == "encoder":
        return None
    return 0.0 if case.params["po2"] else 1.0


# -- damaged model files -----------------------------------------------------------------------------------
#: values written over an initializer element: not numbers, infinite, zero, negative, huge, tiny, fractional
SPECIAL = (float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e30, 1e-30, 3.5, 2.0**40)


def draw_damage(choose: Choose) -> list[tuple]:
    """One to three steps: ("byte", position, xor mask) flips bits of the file, ("value", position, value)
    overwrites one element of an initializer (positions wrap around)."""
    steps = []
    for _ in range(choose((1, 2, 3))):
        if choose(("byte", "value")) == "byte":
            steps.append(("byte", choose(range(1 << 20)), choose(range(1, 256))))
        else:
            steps.append(("value", choose(range(1 << 20)), choose(SPECIAL)))
    return steps


def damaged(original: bytes, steps) -> bytes:
    """The model file `original` with the damage applied (values first, then bytes of the serialised file)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(original)
    for kind, pos, value in steps:
        if kind == "value":
            tensor = model.graph.initializer[pos % len(model.graph.initializer)]
            values = numpy_helper.to_array(tensor).copy()
            if values.size and values.dtype.kind == "f":
                values.flat[pos % values.size] = value
                tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    data = bytearray(model.SerializeToString())
    for kind, pos, value in steps:
        if kind == "byte":
            data[pos % len(data)] ^= value
    return bytes(data)


def build_damaged(original: bytes, steps, work: Path) -> tuple[int, str]:
    """Build the damaged model with the CLI: (exit code, its stderr)."""
    import contextlib
    import io

    from qonnx_spartan.cli import main

    path = work / "model.onnx"
    path.write_bytes(damaged(original, steps))
    budget = work / "budget.json"
    budget.write_text('{"device": "xc7s50"}')  # room for whatever the damage makes of the weights
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["build", str(path), "-o", str(work / "out"), "--budget", str(budget)])
    return code, err.getvalue()
