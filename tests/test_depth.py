"""Logic depth (qonnx_spartan/depth.py): the longest register-to-register path, on netlists built by hand
and on a synthesised layer."""

from __future__ import annotations

import numpy as np
from single_op import linear_layer, lowered_model, tensor_io

from qonnx_spartan.depth import carry_chains, longest_paths
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.synth import synthesise


def cell(kind: str, inputs: dict, outputs: dict, **parameters) -> dict:
    return {
        "type": kind,
        "parameters": parameters,
        "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}},
        "connections": {**inputs, **outputs},
    }


def chain_netlist() -> dict:
    """a: FF -> LUT -> LUT -> CARRY4 -> CARRY4 (through CI) -> FF; b: FF -> LUT -> FF; a LUTRAM written from
    the long path's LUT (its write data ends a path; its read address starts none)."""
    cells = {
        "a.q0": cell("FDRE", {"D": [100], "C": [1]}, {"Q": [2]}),
        "a.l1": cell("LUT2", {"I0": [2], "I1": [2]}, {"O": [3]}),
        "a.l2": cell("LUT3", {"I0": [3], "I1": [2], "I2": [2]}, {"O": [4]}),
        "a.c1": cell("CARRY4", {"S": [4] * 4, "DI": [0] * 4, "CI": [0]}, {"O": [5, 6, 7, 8], "CO": [9, 10, 11, 12]}),
        "a.c2": cell(
            "CARRY4", {"S": [4] * 4, "DI": [0] * 4, "CI": [12]}, {"O": [13, 14, 15, 16], "CO": [17, 18, 19, 20]}
        ),
        "a.q1": cell("FDRE", {"D": [16], "C": [1]}, {"Q": [21]}),
        "b.q0": cell("FDRE", {"D": [101], "C": [1]}, {"Q": [30]}),
        "b.l1": cell("LUT1", {"I0": [30]}, {"O": [31]}),
        "b.q1": cell("FDRE", {"D": [31], "C": [1]}, {"Q": [32]}),
        "b.ram": cell("RAM32M", {"DIA": [4, 4], "ADDRA": [30], "WE": [30]}, {"DOA": [33, 34]}),
    }
    return {"modules": {"t": {"cells": cells}}}


def test_the_longest_path_counts_luts_and_the_carry_chain_it_runs_through():
    paths = longest_paths(chain_netlist(), "t", lambda name: name.split(".")[0])
    assert (paths["a"].lut_levels, paths["a"].carry4) == (2, 2)
    # b's worst path is the LUTRAM's write data from a's two LUTs, not its one-LUT register path
    assert (paths["b"].lut_levels, paths["b"].carry4, paths["b"].lutram) == (2, 0, 0)
    assert paths["a"].ns > paths["b"].ns
    assert carry_chains(chain_netlist(), "t", lambda name: name.split(".")[0]) == {"a": 2}


def test_a_synthesised_design_reports_every_layer_depth(tmp_path, ghdl, yosys):
    """Each layer's path ends in its own registers: a MAC with a 19-bit accumulator in the fabric has a
    carry chain of five CARRY4 and at least one LUT level on its worst path."""
    rng = np.random.default_rng(4)
    x_t, y_t = IntType(True, 8), IntType(True, 8)
    node = linear_layer("lin", "x", "y", [1, 4, 6], rng.integers(-127, 128, (16, 6)), x_t, y_t, acc_shift=2,
                        rescale=Rescale(1, 9))
    model = lowered_model([node], tensor_io("x", [1, 4, 16], x_t), tensor_io("y", [1, 4, 6], y_t), {"y": y_t})
    path = tmp_path / "m.onnx"
    model.save(str(path))
    out = tmp_path / "build"
    build(BuildConfig(model=path, output_dir=out, start_step="memory_style", memory_style="distributed"))
    depth = synthesise(out)["depth"]
    assert set(depth) == {"lin", "top"}
    assert depth["lin"]["lut_levels"] >= 1 and depth["lin"]["longest_carry4"] >= 5
    assert 0 < depth["lin"]["ns"] < 10
