"""Conv1d on the MAC engine: a linear layer over overlapping (time, channels) rows, padding read as zero
(IntConv1d).  Brevitas's QuantConv1d with kernel, stride, padding and dilation, both exporters: the integer
reference within 3 LSB of Brevitas and GHDL bit-exact in the stated cycles; a single-op design against
yosys; the refusals of what is not a Conv1d on time-major rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from exact import INT8, M17, UINT8, extreme_columns
from op_modules import Extreme, Family
from qonnx.custom_op.registry import getCustomOp
from single_op import lowered_model, tensor_io
from test_op_table import export

from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType, Rescale, matmul_range
from qonnx_spartan.ops.mac import IntConv1d

EXPORTERS = ("torchscript", "dynamo")
MAX_LSB = 3


def conv_model(taps: int, stride: int, pad: int, dilation: int, po2: bool, channels_last: bool = True, seed: int = 0):
    """QuantIdentity on (B, T, 3), x.transpose(1, 2), QuantConv1d(3 -> 5) with ReLU, the transpose back, a
    quantiser: the token embedding of a time-series model."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    act, uact, weight = quantisers(po2)

    class Embedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=6)
            self.conv = qnn.QuantConv1d(
                3, 5, taps, stride=stride, padding=pad, dilation=dilation, weight_quant=weight, weight_bit_width=6
            )
            self.act = qnn.QuantReLU(act_quant=uact, bit_width=6)

        def forward(self, x):
            x = self.inp(x)
            return self.act(self.conv(x.transpose(1, 2) if channels_last else x)).transpose(1, 2)

    torch.manual_seed(seed)
    return calibrated(Embedding(), (8, 3) if channels_last else (3, 8))


def conv_design(in_type: IntType, w_type: IntType, pad: int, stride: int, pairs: int = 0):
    """A padded Conv1d (3 taps over 2 channels) with extreme weights and the widest multiplier: rows inside
    the input reach the accumulator's extremes, the padded ones read zeros.  `pairs`: its 4 outputs as lanes,
    2 * pairs of them two to a DSP48E1 (which needs the accumulators in the fabric: acc_shift 1)."""
    channels, taps, steps = 2, 3, 6
    acc_shift = 1 if pairs else 0
    w = extreme_columns(w_type, taps * channels)
    bias = np.array([7, -7, 0, 2**12])
    lo, hi = matmul_range(in_type, w * 2**acc_shift, bias)
    rescale = Rescale(M17, Rescale.from_ratio(4 * 255 / (hi - lo) * (1 << 17) / M17).shift)
    shape = [1, (steps + 2 * pad - taps) // stride + 1, 4]
    node = IntConv1d.make_node(
        "conv", "x", "y", in_type, w, bias, acc_shift, rescale, INT8, INT8.lo, INT8.hi, shape,
        [0, stride * channels, 0, 1], None, pad * channels, steps * channels,
    )
    if pairs:
        op = getCustomOp(node)
        op.set_nodeattr("lanes", 4)
        op.set_nodeattr("dsp_pairs", pairs)
        assert op.dsp_pairs() == pairs
    inp = tensor_io("x", [1, steps, channels], in_type)
    return lowered_model([node], inp, tensor_io("y", shape, INT8), {"y": INT8})


#: tests/test_overflow.py (the MAC engine's recomputation is tests/test_op_mac.py's)
EXTREMES = {
    "conv1d-int8-padded": Extreme(lambda: conv_design(INT8, INT8, 2, 1), True),
    "conv1d-uint8-padded-strided": Extreme(lambda: conv_design(UINT8, INT8, 1, 2), True),
    "conv1d-int8-padded-paired": Extreme(lambda: conv_design(INT8, INT8, 2, 1, pairs=2), True),
}


def named_example(tmp_path: Path) -> tuple[Path, int]:
    """tests/test_names.py: a padded Conv1d, its window."""
    return export(conv_model(3, 1, 1, 1, False), "torchscript", tmp_path / "conv.onnx", (1, 8, 3)), 50


CASES = [
    # taps, stride, padding, dilation, power-of-two scales
    (3, 1, 1, 1, False),  # "same" padding
    (3, 2, 2, 2, True),  # every parameter at once
    (1, 1, 0, 1, True),  # pointwise: a linear layer
    (4, 3, 0, 1, False),  # strided, unpadded: an IntLinear over overlapping rows
    (4, 1, "same", 1, True),  # padding="same" of an even kernel: 1 step before, 2 after (auto_pad SAME_UPPER)
]


def lowered_and_lsb(model, path: Path, out: Path, x: np.ndarray):
    """The build (through generate_hdl) and the integer reference's worst distance to Brevitas in output LSBs."""
    import torch

    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.hostio import HostIO
    from qonnx_spartan.reference import run_reference

    lowered = build(BuildConfig(model=path, output_dir=out))
    host = HostIO.load(lowered)
    ints = run_reference(lowered, host.input.quantize(x.reshape(len(x), -1)))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy().reshape(len(x), -1)
    return lowered, float(np.abs(ints * host.output.scale - expected).max() / host.output.scale)


def calibration_design(in_bits: int, channels: int, taps: int, n_out: int, steps: int, stride: int, pad: int, seed: int):
    """A Conv1d on (time, channels) rows with random 6-bit weights and bias: an IntConv1d when padded (its
    window's LUTs are measured by the rows), else the IntLinear over overlapping rows it lowers to."""
    import numpy as np
    from single_op import lowered_model, tensor_io

    from qonnx_spartan.intarith import IntType, Rescale, matmul_range
    from qonnx_spartan.ops.mac import IntConv1d, IntLinear

    rng = np.random.default_rng(seed)
    in_type, out_type = IntType(seed % 2 == 0, in_bits), IntType(True, 8)
    w = rng.integers(-31, 32, size=(taps * channels, n_out))
    bias = rng.integers(-200, 200, size=n_out)
    lo, hi = matmul_range(in_type, w, bias)
    rescale = Rescale.from_ratio(255 / (hi - lo))
    out_steps = (steps + 2 * pad - taps) // stride + 1
    shape = [1, out_steps, n_out]
    args = ("conv", "x", "y", in_type, w, bias, 0, rescale, out_type, out_type.lo, out_type.hi, shape)
    a_stride = [0, stride * channels, 0, 1]
    if pad:
        node = IntConv1d.make_node(*args, a_stride, None, pad * channels, steps * channels)
    else:
        node = IntLinear.make_node(*args, a_stride=a_stride)
    inp = tensor_io("x", [1, steps, channels], in_type)
    return lowered_model([node], inp, tensor_io("y", shape, out_type), {"y": out_type})


def calibration_family(rng) -> list[tuple[str, dict, str]]:
    """calibration/sweep.py: (name, parameters, memory style) of the Conv1d's single-op designs."""
    designs = []
    for i in range(12):
        channels, taps, stride = rng.choice((1, 3, 4, 7)), rng.choice((2, 3, 5)), rng.choice((1, 1, 2))
        pad = rng.choice((0, 1, 2, taps - 1)) if i % 4 else 0
        steps, n_out, in_bits = rng.choice((6, 12, 24, 48)), rng.choice((4, 8, 16)), rng.randint(3, 8)
        style = rng.choice(("block", "distributed", "auto"))
        params = dict(in_bits=in_bits, channels=channels, taps=taps, n_out=n_out, steps=steps, stride=stride)
        params.update(pad=pad, seed=950 + i)
        name = f"conv c{channels} k{taps} s{stride} p{pad} t{steps} n{n_out} b{in_bits} {style}"
        designs.append((name, params, style))
    return designs


#: calibration/sweep.py's single-op designs of this op
CALIBRATION = {"conv": Family(101, calibration_family, calibration_design)}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("taps,stride,pad,dilation,po2", CASES)
def test_conv1d_from_brevitas_bit_exact_in_ghdl(tmp_path, taps, stride, pad, dilation, po2, exporter, brevitas, ghdl):
    from qonnx_spartan.simulation import simulate_build

    model = conv_model(taps, stride, pad, dilation, po2)
    path = export(model, exporter, tmp_path / "conv.onnx", in_shape=(1, 8, 3))
    x = np.random.default_rng(taps).normal(size=(16, 8, 3)).astype(np.float32) * 2
    lowered, lsb = lowered_and_lsb(model, path, tmp_path / "build", x)
    assert [n.op_type for n in lowered.graph.node] == ["IntConv1d" if pad else "IntLinear"]
    assert lsb <= MAX_LSB
    report = simulate_build(tmp_path / "build", x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(lowered).cycles()


def stacked_conv_model(po2: bool, seed: int = 0):
    """Two QuantConv1d (3 -> 6 -> 5, kernel 3, padding 1) with a QuantReLU each, one transpose before them
    and one after: the second reads the first's (batch, channels, time) output directly."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    act, uact, weight = quantisers(po2)

    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=6)
            conv = dict(kernel_size=3, padding=1, weight_quant=weight, weight_bit_width=6)
            self.conv1, self.conv2 = qnn.QuantConv1d(3, 6, **conv), qnn.QuantConv1d(6, 5, **conv)
            self.act1 = qnn.QuantReLU(act_quant=uact, bit_width=6)
            self.act2 = qnn.QuantReLU(act_quant=uact, bit_width=6)

        def forward(self, x):
            x = self.act1(self.conv1(self.inp(x).transpose(1, 2)))
            return self.act2(self.conv2(x)).transpose(1, 2)

    torch.manual_seed(seed)
    return calibrated(Stack(), (8, 3))


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("po2", [True, False])
def test_stacked_conv1d_layers_hand_on_time_major_rows(tmp_path, po2, exporter, brevitas, ghdl):
    """A Conv1d read only by another Conv1d writes its result time-major (a buffer of its own, the
    (batch, channels, time) tensor a view of it), so the second reads a time step's channels together."""
    from qonnx_spartan.simulation import simulate_build

    model = stacked_conv_model(po2)
    path = export(model, exporter, tmp_path / "conv.onnx", in_shape=(1, 8, 3))
    x = np.random.default_rng(5).normal(size=(16, 8, 3)).astype(np.float32) * 2
    lowered, lsb = lowered_and_lsb(model, path, tmp_path / "build", x)
    first, second = (getCustomOp(n) for n in lowered.graph.node)
    assert [n.op_type for n in lowered.graph.node] == ["IntConv1d"] * 2
    assert first.get_nodeattr("y_stride") == [0, 6, 1]  # time-major: step t's 6 channels together
    assert second.onnx_node.input[0] == first.onnx_node.output[0]
    assert lsb <= MAX_LSB
    report = simulate_build(tmp_path / "build", x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(lowered).cycles()


def test_padding_reads_zero_and_costs_a_window():
    """The reference pads with zeros around the buffer; the window's LUTs and flag are counted beside the
    linear layer's."""
    from qonnx_spartan.reference import run_reference

    int8, int10 = IntType(True, 8), IntType(True, 10)
    box = np.ones((3, 1), dtype=np.int64)  # a 3-tap box filter over one channel, padding 1 on both sides
    node = IntConv1d.make_node(
        "c", "x", "y", int8, box, np.zeros(1), 0, Rescale(1, 0), int10, -512, 511, [1, 4, 1], [0, 1, 0, 1], None, 1, 4
    )
    model = lowered_model([node], tensor_io("x", [1, 4, 1], int8), tensor_io("y", [1, 4, 1], int10), {})
    assert run_reference(model, np.array([[1, 2, 3, 4]])).tolist() == [[3, 6, 9, 7]]
    op = Design(model).layers[0].op
    assert op.read_window() == {"lo": 1, "hi": 5}
    assert op.exact_resources()["FF"] == 1 and op.exact_resources()["LUT"] > 0


def test_a_padded_conv_counts_its_products_in_luts_beside_its_window():
    """A padded Conv1d whose products are built in LUTs (the lanes step's move when DSPs run out) counts
    them as the linear layer does, and its window on top."""
    from qonnx_spartan.ops.mac.engine import MacOp

    op = Design(conv_design(INT8, INT8, 2, 1)).layers[0].op
    on_dsps = op.exact_resources()
    op.set_nodeattr("logic_lanes", op.lanes())
    in_luts = op.exact_resources()
    linear = MacOp.exact_resources(op)
    assert in_luts["DSP"] < on_dsps["DSP"] and linear["LUT"] > 0
    assert in_luts["LUT"] == linear["LUT"] + on_dsps["LUT"] and in_luts["FF"] == linear["FF"] + 1

def test_same_padding_is_the_explicit_padding_torch_applies():
    """auto_pad (TorchScript's `padding="same"`): the total padding a ceil(T / stride)-step output needs, its
    odd step after the input (SAME_UPPER, as torch pads) or before it (SAME_LOWER)."""
    import onnx

    from qonnx_spartan.ops.mac.lower import conv_pads

    def pads(auto, steps, span, stride):
        node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto)
        return conv_pads(node, {a.name: a for a in node.attribute}, steps, span, stride)

    assert pads("SAME_UPPER", 8, 4, 1) == (1, 2) and pads("SAME_LOWER", 8, 4, 1) == (2, 1)
    assert pads("SAME_UPPER", 8, 3, 1) == (1, 1) and pads("VALID", 8, 3, 1) == (0, 0)
    assert pads("SAME_UPPER", 8, 3, 2) == (0, 1)  # 4 outputs: the last reads one step past the input


def test_grouped_conv_is_refused_by_name(tmp_path, brevitas):
    """groups > 1 has no integer form here: one line naming the node and what to write instead."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated

    from qonnx_spartan.flow import BuildConfig, build

    class Grouped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=6)
            self.conv = qnn.QuantConv1d(4, 4, 3, padding=1, groups=2, weight_bit_width=6)

        def forward(self, x):
            return self.conv(self.inp(x).transpose(1, 2))

    path = export(calibrated(Grouped(), (8, 4)), "torchscript", tmp_path / "conv.onnx", in_shape=(1, 8, 4))
    with pytest.raises(SpartanError, match=r"node '/conv/Conv' \(Conv\).*groups=2.*groups=1, or one QuantConv1d"):
        build(BuildConfig(model=path, output_dir=tmp_path / "b", stop_step="lower"))


def test_channel_major_input_is_refused_by_name(tmp_path, brevitas):
    """A Conv1d straight on a (B, C, T) input: a time step's channels are not adjacent in the buffer."""
    from qonnx_spartan.flow import BuildConfig, build

    model = conv_model(3, 1, 0, 1, True, channels_last=False)
    path = export(model, "torchscript", tmp_path / "conv.onnx", in_shape=(1, 3, 8))
    with pytest.raises(SpartanError, match=r"node '/conv/Conv' \(Conv\).*transpose\(1, 2\)"):
        build(BuildConfig(model=path, output_dir=tmp_path / "b", stop_step="lower"))


def test_a_padded_conv_synthesises_as_estimated(tmp_path, ghdl, yosys):
    """yosys against the estimate on a padded design of the conv family (CALIBRATION): BRAM18, DSP and
    LUTRAM exact, LUT and FF within 3 %."""
    from qonnx_spartan.estimate import estimate
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.model_file import load_model
    from qonnx_spartan.synth import synthesise

    params = dict(in_bits=3, channels=3, taps=5, n_out=16, steps=24, stride=1, pad=1, seed=955)
    calibration_design(**params).save(str(tmp_path / "lowered.onnx"))
    out = tmp_path / "build"
    lowered = tmp_path / "lowered.onnx"
    build(BuildConfig(model=lowered, output_dir=out, start_step="memory_style", memory_style="distributed"))
    measured, estimated = synthesise(out)["total"], estimate(load_model(out / "model_int.onnx"))["total"]
    for resource in ("BRAM18", "DSP", "LUTRAM"):
        assert estimated[resource] == measured[resource], resource
    for resource in ("LUT", "FF"):
        assert abs(estimated[resource] - measured[resource]) <= 0.03 * measured[resource], (estimated, measured)
