"""IntLayerNorm: the integer reference against the float LayerNorm Brevitas would quantise, at every width
the plan allows; the VHDL against the reference in GHDL, bit-exact and in the stated cycles, extreme rows
included; Brevitas's nn.LayerNorm between quantisers with both exporters; a single-op design against yosys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from exact import INT2, INT8, UINT4, check_widths, clamp, half_even
from op_modules import Extreme, Family
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io
from test_op_table import export

from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType
from qonnx_spartan.ops.layernorm import IntLayerNorm

EXPORTERS = ("torchscript", "dynamo")


def norm_node(in_type: IntType, out_type: IntType, shape: list[int], seed: int, eps: float = 1e-5):
    """A LayerNorm over inputs spanning about [-4, 4] with seeded gamma and beta, outputs over [-4, 4]."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    gamma, beta = rng.normal(size=c) * 0.5 + 1, rng.normal(size=c) * 0.3
    in_scale, out_scale = 4 / 2 ** (in_type.bits - 1), 4 / 2 ** (out_type.bits - 1)
    node = IntLayerNorm.make_node(
        "norm", "x", "y", in_type, in_scale, gamma, beta, eps, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    return node, (gamma, beta, in_scale, out_scale)


def extreme_rows(t: IntType, rows: int, c: int, seed: int) -> np.ndarray:
    """Random rows, then all minimum, all maximum (constant rows: the output is beta), alternating, one
    maximum among minimums, one step above the minimum (the least variance)."""
    rng = np.random.default_rng(seed)
    special = [np.full(c, t.lo), np.full(c, t.hi), np.where(np.arange(c) % 2, t.hi, t.lo)]
    one = np.full(c, t.lo)
    one[c // 2] = t.hi
    step = np.full(c, t.lo)
    step[0] = t.lo + 1
    special += [one, step]
    random = rng.integers(t.lo, t.hi + 1, size=(4 * rows, c))
    block = np.concatenate([random, np.resize(np.array(special), (-(-len(special) // rows) * rows, c))])
    return block.reshape(-1, rows, c)


def calibration_design(in_bits: int, signed: bool, out_bits: int, rows: int, channels: int, seed: int):
    """A single IntLayerNorm with seeded random gamma and beta, eps 1e-5, the input's range about [-4, 4]."""
    import numpy as np
    from single_op import lowered_model, tensor_io

    from qonnx_spartan.intarith import IntType
    from qonnx_spartan.ops.layernorm import IntLayerNorm

    rng = np.random.default_rng(seed)
    in_type, out_type = IntType(signed, in_bits), IntType(True, out_bits)
    gamma, beta = rng.normal(size=channels) * 0.5 + 1, rng.normal(size=channels) * 0.3
    shape = [1, rows, channels]
    in_scale, out_scale = 4 / 2 ** (in_bits - 1), 4 / 2 ** (out_bits - 1)
    node = IntLayerNorm.make_node(
        "norm", "x", "y", in_type, in_scale, gamma, beta, 1e-5, out_type, out_scale, out_type.lo, out_type.hi, shape
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


def calibration_family(rng) -> list[tuple[str, dict, str]]:
    """calibration/sweep.py: (name, parameters, memory style) of the LayerNorm's single-op designs."""
    designs = []
    for i in range(12):
        in_bits, out_bits, signed = rng.randint(2, 8), rng.randint(2, 8), rng.random() < 0.7
        rows, channels = rng.choice((1, 3, 6, 8)), rng.choice((2, 5, 8, 16, 24, 32, 64))
        style = rng.choice(("block", "distributed", "auto"))
        params = dict(in_bits=in_bits, signed=signed, out_bits=out_bits, rows=rows, channels=channels, seed=1000 + i)
        name = f"layernorm {'int' if signed else 'uint'}{in_bits}->{out_bits} {rows}x{channels} {style}"
        designs.append((name, params, style))
    return designs


#: calibration/sweep.py's single-op designs of this op
CALIBRATION = {"layernorm": Family(102, calibration_family, calibration_design)}


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("channels", [2, 5, 16, 64])
def test_within_one_lsb_of_the_float_layernorm(bits, signed, channels):
    in_type, out_type = IntType(signed, bits), IntType(True, bits)
    node, (gamma, beta, s_in, s_out) = norm_node(in_type, out_type, [1, 3, channels], seed=bits)
    op = getCustomOp(node)
    x = extreme_rows(in_type, 3, channels, seed=channels)
    context = {"x": x.astype(np.float32)}
    op.execute_node(context, None)
    real = x * s_in
    mean, var = real.mean(axis=-1, keepdims=True), real.var(axis=-1, keepdims=True)
    expected = np.clip(np.round((gamma * (real - mean) / np.sqrt(var + 1e-5) + beta) / s_out), out_type.lo, out_type.hi)
    assert np.abs(context["y"] - expected).max() <= 1


GHDL_CASES = [
    # input type, output type, shape
    (IntType(True, 8), IntType(True, 8), [1, 3, 8]),
    (IntType(False, 4), IntType(True, 6), [1, 2, 5]),
    (IntType(True, 2), IntType(True, 2), [1, 4, 2]),
    (IntType(True, 6), IntType(True, 3), [1, 1, 33]),
]


@pytest.mark.parametrize("in_type,out_type,shape", GHDL_CASES)
def test_vhdl_bit_exact_in_stated_cycles(tmp_path, in_type, out_type, shape, ghdl):
    node, _ = norm_node(in_type, out_type, shape, seed=in_type.bits)
    model = lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    vectors = extreme_rows(in_type, shape[1], shape[2], seed=1)
    report = build_and_simulate(model, tmp_path, vectors)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(model).cycles()


def layernorm_model(bits: int, po2: bool, seed: int = 0):
    """QuantIdentity, nn.LayerNorm(6) with trained-looking weight and bias, QuantIdentity; calibrated."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    act = quantisers(po2)[0]

    class Norm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            self.norm = torch.nn.LayerNorm(6)
            self.out = qnn.QuantIdentity(act_quant=act, bit_width=bits)

        def forward(self, x):
            return self.out(self.norm(self.inp(x)))

    torch.manual_seed(seed)
    model = Norm()
    with torch.no_grad():
        model.norm.weight.copy_(torch.randn(6) * 0.5 + 1)
        model.norm.bias.copy_(torch.randn(6) * 0.3)
    return calibrated(model, (4, 6))


def exact_layernorm(op, inputs: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """(outputs, the values of each register the widths declare), with the square root and the division
    bit by bit as the hardware's restoring steps take them; the widths are checked."""
    c, w = op.channels, op.widths()
    f, g, e, k, exponent = (
        op.get_nodeattr(a) for a in ("eps_bits", "root_shift", "eps_term", "z_shift", "quotient_bits")
    )
    mult, offset = [int(v) for v in op.mult()], [int(v) for v in op.offsets()]
    lo, hi, shift = op.get_nodeattr("out_lo"), op.get_nodeattr("out_hi"), op.get_nodeattr("shift")
    held = {key: [] for key in ("sum_bits", "d_bits", "w_bits", "radicand_bits", "root_bits", "product_bits")}
    held.update(z_bits=[], scaled_bits=[])
    outputs, x = [], inputs[0]
    for start in range(0, len(x), c):
        row = x[start : start + c]
        held["sum_bits"] += [sum(row[: i + 1]) for i in range(c)]
        total = sum(row)
        d = [c * v - total for v in row]
        held["d_bits"] += d
        held["w_bits"] += [sum(v * v for v in d[: i + 1]) for i in range(c)]
        radicand = (sum(v * v for v in d) * 4**f + e) * 4**g
        held["radicand_bits"].append(radicand)
        remainder = root = 0
        for i in reversed(range(w["radicand_bits"] // 2)):
            remainder, trial = (remainder << 2) | ((radicand >> (2 * i)) & 3), (root << 2) | 1
            remainder, root = (remainder - trial, (root << 1) | 1) if remainder >= trial else (remainder, root << 1)
        held["root_bits"].append(root)
        remainder, quotient = 1 << (exponent - w["quotient_bits_width"]), 0
        for _ in range(w["quotient_bits_width"]):
            remainder <<= 1
            accepted = remainder >= root
            remainder, quotient = remainder - root * accepted, 2 * quotient + accepted
        products = [v * quotient for v in d]
        z = [p >> k for p in products]
        scaled = [zv * mult[i] + offset[i] for i, zv in enumerate(z)]
        held["product_bits"] += products
        held["z_bits"] += z
        held["scaled_bits"] += scaled
        outputs += [clamp(half_even(v, shift), lo, hi) for v in scaled]
    check_widths(held, w, unsigned=("w_bits", "radicand_bits", "root_bits"))
    return outputs, held


RECOMPUTE = {IntLayerNorm: exact_layernorm}


def layernorm_design(in_type: IntType, out_type: IntType, channels: int):
    """Gains from tiny to large, both signs, offsets that saturate: extreme rows (constant, alternating,
    one maximum) make the largest deviations, squares and normalised values."""
    shape = [1, 2, channels]
    gamma = np.resize([40.0, -40.0, 1e-3, -1.0], channels)
    beta = np.resize([3.0, -3.0, 0.0, 0.5], channels)
    node = IntLayerNorm.make_node(
        "norm", "x", "y", in_type, 0.05, gamma, beta, 1e-5, out_type, 0.02, out_type.lo, out_type.hi, shape
    )
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


#: tests/test_overflow.py
EXTREMES = {
    "layernorm-int8-64": Extreme(lambda: layernorm_design(INT8, INT8, 64)),
    "layernorm-uint4-2": Extreme(lambda: layernorm_design(UINT4, INT2, 2)),
}


def named_example(tmp_path: Path) -> tuple[Path, int]:
    """tests/test_names.py: a LayerNorm."""
    return export(layernorm_model(5, False), "torchscript", tmp_path / "norm.onnx", (1, 4, 6)), 50


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("bits,po2", [(8, False), (6, True), (3, True), (2, False)])
def test_brevitas_layernorm_bit_exact_within_3_lsb(tmp_path, bits, po2, exporter, brevitas, ghdl):
    import torch

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.simulation import simulate_build

    model = layernorm_model(bits, po2)
    path = export(model, exporter, tmp_path / "norm.onnx", in_shape=(1, 4, 6))
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "build"))
    assert [n.op_type for n in lowered.graph.node] == ["IntLayerNorm"]
    x = np.random.default_rng(bits).normal(size=(16, 4, 6)).astype(np.float32) * 2
    report = simulate_build(tmp_path / "build", x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(lowered).cycles()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy().reshape(len(x), -1)
    assert np.abs(report.hardware * report.io.output.scale - expected).max() / report.io.output.scale <= 3


def test_layernorm_of_an_unquantised_accumulator_is_refused_by_name(tmp_path, brevitas):
    """nn.LayerNorm straight after a QuantLinear without output quantiser: quantise before normalising."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    from qonnx_spartan.flow import BuildConfig, build

    act, _, weight = quantisers(False)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act, bit_width=6),
        qnn.QuantLinear(6, 6, bias=True, weight_quant=weight, weight_bit_width=6),
        torch.nn.LayerNorm(6),
        qnn.QuantIdentity(act_quant=act, bit_width=6),
    )
    path = export(calibrated(model, (4, 6)), "torchscript", tmp_path / "m.onnx", in_shape=(1, 4, 6))
    with pytest.raises(SpartanError, match=r"\(LayerNormalization\).*not re-quantised"):
        build(BuildConfig(model=path, output_dir=tmp_path / "b", stop_step="lower"))


def test_one_channel_and_too_wide_rows_are_refused():
    int8 = IntType(True, 8)
    with pytest.raises(ValueError, match="one channel"):
        IntLayerNorm.make_node("n", "x", "y", int8, 0.1, [1.0], [0.0], 1e-5, int8, 0.1, -128, 127, [1, 4, 1])
    int16 = IntType(True, 16)
    with pytest.raises(ValueError, match="too wide"):
        IntLayerNorm.make_node("n", "x", "y", int16, 0.1, np.ones(512), np.zeros(512), 1e-5, int8, 0.1, -1, 1, [1, 512])


def test_a_layernorm_synthesises_as_estimated(tmp_path, ghdl, yosys):
    """yosys against the estimate on a design of the layernorm family (CALIBRATION): BRAM18, DSP and
    LUTRAM (the channel index's SRL) exact, LUT and FF within 3 %."""
    from qonnx_spartan.estimate import estimate
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.synth import synthesise

    calibration_design(in_bits=5, signed=True, out_bits=3, rows=3, channels=16, seed=1005).save(str(tmp_path / "n.onnx"))
    out = tmp_path / "build"
    build(BuildConfig(model=tmp_path / "n.onnx", output_dir=out, start_step="memory_style", memory_style="block"))
    measured, estimated = synthesise(out)["total"], estimate(load_model(out / "model_int.onnx"))["total"]
    for resource in ("BRAM18", "DSP", "LUTRAM"):
        assert estimated[resource] == measured[resource], resource
    for resource in ("LUT", "FF"):
        assert abs(estimated[resource] - measured[resource]) <= 0.03 * measured[resource], (estimated, measured)
