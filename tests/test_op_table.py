"""IntTable: unary functions between two quantisers as a ROM over the input's integers.  The words against
Brevitas (every function, both exporters, every input integer), the VHDL against the reference in GHDL,
bit-exact and in the cycles the op states, and the refusals of what has no table."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from exact import INT2, INT8, UINT8
from op_modules import Extreme, Family
from qonnx.custom_op.registry import getCustomOp
from single_op import build_and_simulate, lowered_model, tensor_io

from qonnx_spartan.design import Design
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.table import IntTable
from qonnx_spartan.ops.table.int_table import bit_patterns

EXPORTERS = ("torchscript", "dynamo")
#: The functions a model writes between two quantisers, as it writes them (torch modules or expressions).
FUNCTIONS = {
    "gelu": lambda torch, x: torch.nn.functional.gelu(x),
    "gelu_tanh": lambda torch, x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu_erf_written_out": lambda torch, x: x * 0.5 * (1.0 + torch.erf(x / 1.4142135623730951)),
    "sigmoid": lambda torch, x: torch.sigmoid(x),
    "tanh": lambda torch, x: torch.tanh(x),
    "silu": lambda torch, x: torch.nn.functional.silu(x),
    "swish_written_out": lambda torch, x: x * torch.sigmoid(x),
    "hardswish": lambda torch, x: torch.nn.functional.hardswish(x),
    "hardsigmoid": lambda torch, x: torch.nn.functional.hardsigmoid(x),
    "exp": lambda torch, x: torch.exp(x),
    "elu": lambda torch, x: torch.nn.functional.elu(x, alpha=0.7),
    "leaky_relu": lambda torch, x: torch.nn.functional.leaky_relu(x, 0.1),
    "softplus": lambda torch, x: torch.nn.functional.softplus(x),
    "mish": lambda torch, x: torch.nn.functional.mish(x),
    "relu": lambda torch, x: torch.relu(x),
}


def function_model(names: list[str], bits: int, po2: bool, seed: int = 0):
    """QuantIdentity, then each function followed by its own quantiser (signed, `bits` wide), calibrated."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    act = quantisers(po2)[0]

    class Functions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=act, bit_width=bits)
            self.quants = torch.nn.ModuleList(qnn.QuantIdentity(act_quant=act, bit_width=bits) for _ in names)

        def forward(self, x):
            x = self.inp(x)
            for name, quant in zip(names, self.quants):
                x = quant(FUNCTIONS[name](torch, x))
            return x

    torch.manual_seed(seed)
    return calibrated(Functions(), (4, 3))


def export(model, exporter: str, path: Path, in_shape=(1, 4, 3)) -> Path:
    """export_qonnx with `dynamo=False` ("torchscript") or torch's default exporter ("dynamo")."""
    import torch
    from brevitas.export import export_qonnx

    kwargs = {"dynamo": False} if exporter == "torchscript" else {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        export_qonnx(model, torch.randn(*in_shape), str(path), **kwargs)
    return path


def exact_table(op, operands: list[list[int]]) -> tuple[list[int], dict[str, list[int]]]:
    """The word at each input's bit pattern; every word within the output type."""
    table, bits, out = [int(v) for v in op.table()], op.in_type().bits, op.out_type()
    assert all(out.lo <= v <= out.hi for v in table)
    return [table[x % (1 << bits)] for x in operands[0]], {}


RECOMPUTE = {IntTable: exact_table}


def table_design(in_type: IntType, out_type: IntType):
    """A table whose words alternate between the output's extremes, so the extreme inputs read both ends."""
    shape = [1, 3, 4]
    words = np.where(np.arange(1 << in_type.bits) % 2, out_type.hi, out_type.lo)
    node = IntTable.make_node("f", "x", "y", in_type, out_type, words, shape)
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


#: tests/test_overflow.py
EXTREMES = {
    "table-int8-to-uint8": Extreme(lambda: table_design(INT8, UINT8)),
    "table-int2-to-int2": Extreme(lambda: table_design(INT2, INT2)),
}


def named_example(tmp_path: Path) -> tuple[Path, int]:
    """tests/test_names.py: a chain of functions, one table each."""
    return export(function_model(["gelu", "sigmoid"], 5, False), "torchscript", tmp_path / "functions.onnx"), 50


def brevitas_and_integer(model, lowered, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(Brevitas's outputs, the integer reference's dequantised, the output LSB) over float inputs x."""
    import torch

    from qonnx_spartan.hostio import HostIO
    from qonnx_spartan.reference import run_reference

    host = HostIO.load(lowered)
    ints = run_reference(lowered, host.input.quantize(x.reshape(len(x), -1)))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy().reshape(len(x), -1).astype(np.float64)
    return expected, ints * host.output.scale, host.output.scale


def every_input_integer(model) -> np.ndarray:
    """Inputs that reach every integer of the input quantiser (and beyond its range: saturation)."""
    scale = float(model.inp.act_quant.scale())
    bits = int(model.inp.act_quant.bit_width())
    ints = np.arange(-(2 ** (bits - 1)) - 2, 2 ** (bits - 1) + 2)
    padded = np.resize(ints, -(-len(ints) // 12) * 12)
    return (padded * scale).astype(np.float32).reshape(-1, 4, 3)


# -- the words against Brevitas -----------------------------------------------------------------------
def calibration_design(in_bits: int, signed: bool, out_bits: int, shape: list[int], seed: int):
    """A single IntTable over a seeded random table (its cells, not its function, decide its LUTs)."""
    import numpy as np
    from single_op import lowered_model, tensor_io

    from qonnx_spartan.intarith import IntType
    from qonnx_spartan.ops.table import IntTable

    in_type, out_type = IntType(signed, in_bits), IntType(seed % 2 == 0, out_bits)
    words = np.random.default_rng(seed).integers(out_type.lo, out_type.hi + 1, size=1 << in_bits)
    node = IntTable.make_node("table", "x", "y", in_type, out_type, words, shape)
    return lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})


def calibration_family(rng) -> list[tuple[str, dict, str]]:
    """calibration/sweep.py: (name, parameters, memory style) of the table's single-op designs."""
    designs = []
    for i in range(12):
        in_bits, out_bits = rng.randint(2, 8), rng.randint(2, 8)
        shape = [1, rng.choice((1, 3, 5, 8, 16)), rng.choice((4, 7, 16, 24, 33))]
        signed, style = rng.random() < 0.6, rng.choice(("block", "distributed", "distributed"))
        params = dict(in_bits=in_bits, signed=signed, out_bits=out_bits, shape=shape, seed=900 + i)
        name = f"table {'int' if signed else 'uint'}{in_bits}->{out_bits} {'x'.join(map(str, shape[1:]))} {style}"
        designs.append((name, params, style))
    return designs


#: calibration/sweep.py's single-op designs of this op
CALIBRATION = {"table": Family(100, calibration_family, calibration_design)}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_table_equals_brevitas_on_every_input(tmp_path, name, exporter, brevitas):
    from qonnx_spartan.flow import BuildConfig, build

    for bits, po2 in ((6, True), (8, False)):
        model = function_model([name], bits, po2)
        path = export(model, exporter, tmp_path / f"{name}{bits}.onnx")
        lowered = build(BuildConfig(model=path, output_dir=tmp_path / f"b{bits}", stop_step="lower"))
        assert [n.op_type for n in lowered.graph.node] == ["IntTable"]
        x = np.concatenate([every_input_integer(model), np.random.default_rng(1).normal(size=(50, 4, 3)) * 3])
        expected, got, lsb = brevitas_and_integer(model, lowered, x.astype(np.float32))
        assert np.abs(got - expected).max() / lsb < 1e-3, (bits, np.abs(got - expected).max() / lsb)


# -- the VHDL against the reference ---------------------------------------------------------------------
GHDL_CASES = [
    # input type, output type, shape, table style
    (IntType(True, 8), IntType(False, 8), [1, 3, 7], "distributed"),
    (IntType(False, 8), IntType(True, 8), [1, 2, 5], "block"),
    (IntType(True, 2), IntType(True, 2), [1, 9], "distributed"),
    (IntType(False, 5), IntType(False, 3), [1, 4, 4], "block"),
]


def random_table(in_type: IntType, out_type: IntType, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(out_type.lo, out_type.hi + 1, size=1 << in_type.bits)


@pytest.mark.parametrize("in_type,out_type,shape,style", GHDL_CASES)
def test_vhdl_bit_exact_in_stated_cycles(tmp_path, in_type, out_type, shape, style, ghdl):
    node = IntTable.make_node("f", "x", "y", in_type, out_type, random_table(in_type, out_type, in_type.bits), shape)
    model = lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    rng = np.random.default_rng(0)
    count = int(np.prod(shape))
    every = np.resize(bit_patterns(in_type), (-(-(1 << in_type.bits) // count)) * count).reshape(-1, *shape[1:])
    vectors = np.concatenate([every, rng.integers(in_type.lo, in_type.hi + 1, size=(3, *shape[1:]))])
    report = build_and_simulate(model, tmp_path, vectors, memory_style=style)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(model).cycles()
    built = getCustomOp(load_model(tmp_path / "build" / "model_int.onnx").graph.node[0])
    assert built.get_nodeattr("table_mem_style") == style


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_chain_of_functions_from_brevitas_in_ghdl(tmp_path, exporter, brevitas, ghdl):
    """Four tables in a row, exported both ways, built as a user builds: GHDL bit-exact, within 3 LSB."""
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.simulation import simulate_build

    model = function_model(["gelu", "swish_written_out", "tanh", "hardswish"], 6, False, seed=3)
    path = export(model, exporter, tmp_path / "chain.onnx")
    lowered = build(BuildConfig(model=path, output_dir=tmp_path / "build"))
    assert [n.op_type for n in lowered.graph.node] == ["IntTable"] * 4
    x = np.random.default_rng(2).normal(size=(16, 4, 3)).astype(np.float32) * 2
    report = simulate_build(tmp_path / "build", x)
    assert report.bit_exact, np.c_[report.hardware, report.reference][:4]
    assert report.cycles_per_inference == Design(lowered).cycles()
    expected, got, lsb = brevitas_and_integer(model, lowered, x)
    assert np.abs(got - expected).max() / lsb <= 3
    assert np.array_equal(report.hardware * report.io.output.scale, got)


# -- refusals -----------------------------------------------------------------------------------------
def test_table_words_are_checked():
    int4 = IntType(True, 4)
    with pytest.raises(ValueError, match="holds 16 integers"):
        IntTable.make_node("f", "x", "y", int4, int4, np.zeros(8), [1, 4])
    with pytest.raises(ValueError, match="do not fit INT4"):
        IntTable.make_node("f", "x", "y", int4, int4, np.full(16, 8), [1, 4])


def test_a_function_of_an_unquantised_accumulator_is_refused_by_name(tmp_path, brevitas):
    """GELU straight after a QuantLinear without output quantiser: its table would span the accumulator."""
    import brevitas.nn as qnn
    import torch
    from brevitas_models import calibrated, quantisers

    from qonnx_spartan.flow import BuildConfig, build

    act, _, weight = quantisers(False)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act, bit_width=6),
        qnn.QuantLinear(3, 4, bias=True, weight_quant=weight, weight_bit_width=6),
        torch.nn.GELU(),
        qnn.QuantIdentity(act_quant=act, bit_width=6),
    )
    path = export(calibrated(model, (4, 3)), "torchscript", tmp_path / "m.onnx")
    with pytest.raises(SpartanError, match=r"node '.*' \(Gelu\).*not re-quantised"):
        build(BuildConfig(model=path, output_dir=tmp_path / "b", stop_step="lower"))


def test_bit_patterns_are_the_buffer_words_read_unsigned():
    assert bit_patterns(IntType(True, 3)).tolist() == [0, 1, 2, 3, -4, -3, -2, -1]
    assert bit_patterns(IntType(False, 2)).tolist() == [0, 1, 2, 3]


def test_a_table_synthesises_as_estimated(tmp_path, ghdl, yosys):
    """yosys against the estimate on a table of calibration/sweep.py's family: BRAM18, DSP and LUTRAM exact
    (the ROM's cells counted), LUT and FF within 3 %."""
    from qonnx_spartan.estimate import estimate
    from qonnx_spartan.flow import BuildConfig, build
    from qonnx_spartan.synth import synthesise

    in_type, out_type, shape = IntType(True, 6), IntType(True, 8), [1, 5, 33]
    node = IntTable.make_node("f", "x", "y", in_type, out_type, random_table(in_type, out_type, 900), shape)
    model = lowered_model([node], tensor_io("x", shape, in_type), tensor_io("y", shape, out_type), {"y": out_type})
    model.save(str(tmp_path / "lowered.onnx"))
    out = tmp_path / "build"
    build(BuildConfig(model=tmp_path / "lowered.onnx", output_dir=out, start_step="memory_style"))
    measured, estimated = synthesise(out)["total"], estimate(load_model(out / "model_int.onnx"))["total"]
    for resource in ("BRAM18", "DSP", "LUTRAM"):
        assert estimated[resource] == measured[resource], resource
    for resource in ("LUT", "FF"):
        assert abs(estimated[resource] - measured[resource]) <= 0.03 * measured[resource], (estimated, measured)
