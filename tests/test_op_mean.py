"""IntMean: the mean over time rounds exact ties of sum / n half to even, as Brevitas does, in the integer
reference and in GHDL (the rescale's choice is proven over every sum in tests/test_intarith.py)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from brevitas_models import export
from exact import INT8, INT16
from fidelity import requantised_tensor_lsb_errors
from onnx import helper
from op_modules import Extreme
from qonnx.custom_op.registry import getCustomOp
from single_op import lowered_model, tensor_io

from qonnx_spartan.budget import Budget
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.reference import run_reference
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms import Tidy

FEATURES = 5


def mean_model(window: int, bits: int):
    """QuantIdentity -> mean over time -> QuantIdentity, power-of-two scales.  Calibrated on inputs that are
    constant over time, so the mean's scale is its input's and the rescale is 1 / window: every sum
    (2k + 1) * window / 2 is an exact tie."""
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import Int8ActPerTensorFixedPoint

    class MeanOverTime(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=bits)
            self.out = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=bits)

        def forward(self, x):
            return self.out(self.inp(x).mean(dim=1))

    torch.manual_seed(window)
    model = MeanOverTime().train()
    with torch.no_grad():
        for _ in range(8):
            model((torch.randn(64, 1, FEATURES) * 1.5).expand(64, window, FEATURES))
    return model.eval()


def mean_design(in_type: IntType, steps: int, features: int):
    """The mean over `steps` time steps, requantised to the input's own type, ties rounded exactly."""
    rescale = Rescale.for_fraction(Fraction(1, steps), steps * in_type.lo, steps * in_type.hi)
    node = helper.make_node(
        "IntMean",
        ["x"],
        ["y"],
        name="mean",
        domain=DOMAIN,
        out_dtype=in_type.name,
        out_shape=[1, features],
        in_dtype=in_type.name,
        loop_sizes=[1, 1, features, steps],
        a_stride=[0, 0, 1, features],
        y_stride=[0, 0, 1],
        multiplier=rescale.multiplier,
        shift=rescale.shift,
        round_offset=rescale.offset,
        tie_bits=rescale.tie_bits,
        out_lo=in_type.lo,
        out_hi=in_type.hi,
    )
    inp, out = tensor_io("x", [1, steps, features], in_type), tensor_io("y", [1, features], in_type)
    return lowered_model([node], inp, out, {"y": in_type})


#: tests/test_overflow.py (the MAC engine's recomputation is tests/test_op_mac.py's)
EXTREMES = {
    "mean-int16": Extreme(lambda: mean_design(INT16, 64, 3), True),
    "mean-int8-24-steps": Extreme(lambda: mean_design(INT8, 24, 3), True),
}


@pytest.mark.parametrize("window", [6, 12, 24])
def test_mean_equals_brevitas_on_exact_ties_and_ghdl_equals_the_reference(tmp_path, window, brevitas, ghdl):
    import torch

    model = mean_model(window, bits=4)
    onnx_path = export(model, tmp_path / "mean.onnx", (1, window, FEATURES))
    lowered = build(BuildConfig(model=onnx_path, output_dir=tmp_path / "b", budget=Budget(device="xc7s50")))
    (node,) = [n for n in lowered.graph.node if n.op_type == "IntMean"]
    op = getCustomOp(node)
    assert op.rescale().tie_bits > 0  # the exact rescale, not the closest M, s
    io = HostIO.load(lowered)
    full_range = io.input.scale * 2 ** (io.input.dtype.bits - 1)
    x = np.random.default_rng(window).uniform(-1, 1, size=(64, window, FEATURES)).astype(np.float32) * full_range

    with torch.no_grad():
        y_brevitas = model(torch.from_numpy(x)).numpy().reshape(len(x), -1)
    y_int = run_reference(lowered, io.batch(x, "x")).reshape(len(x), -1)
    assert np.array_equal(y_int, np.round(y_brevitas / io.output.scale))
    errors = requantised_tensor_lsb_errors(load_model(onnx_path).transform(Tidy()), lowered, x[:8])
    assert max(errors.values()) == 0, errors

    # the inputs hold exact ties, which the closest M, s (just under 1 / window) rounds down
    sums = io.input.quantize(x).reshape(len(x), window, FEATURES).sum(axis=1).astype(np.int64)
    ratio = Fraction(io.input.scale) / Fraction(io.output.scale) / window
    assert Fraction(op.rescale().multiplier, 2 ** op.rescale().shift) != ratio
    closest = Rescale.from_ratio(float(ratio)).apply(sums)
    assert not np.array_equal(closest, y_int)

    report = simulate_build(tmp_path / "b", x[:16])
    assert report.bit_exact


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_mean_of_an_accumulator_is_output_at_the_engines_width(tmp_path, seed, brevitas, ghdl):
    """`head(x).mean(dim=1)` as the model's output (a default QuantLinear, no quantiser after the mean):
    the sums leave the engine at its accumulator's width, which the template writes as it is."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated

    torch.manual_seed(seed)
    model = torch.nn.Sequential(qnn.QuantIdentity(bit_width=8), qnn.QuantLinear(3, 4, bias=False, weight_bit_width=8))

    class HeadMean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, x):
            return self.body(x).mean(dim=1)

    net = calibrated(HeadMean(), (7, 3))
    lowered = build(BuildConfig(model=export(net, tmp_path / "m.onnx", (1, 7, 3)), output_dir=tmp_path / "b"))
    (op,) = [getCustomOp(n) for n in lowered.graph.node if n.op_type == "IntMean"]
    assert not op.get_nodeattr("requant") and op.out_type().bits == op.acc_bits()
    x = np.random.default_rng(seed).normal(size=(8, 7, 3)).astype(np.float32) * 2
    assert simulate_build(tmp_path / "b", x).bit_exact
