"""Whatever a model calls its nodes and tensors, the VHDL is legal and the design bit-exact."""

from __future__ import annotations

import re

import numpy as np
import onnx
from brevitas_models import export, make_mlp

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.names import VHDL_RESERVED, Namer, sanitize
from qonnx_spartan.simulation import simulate_build

HOSTILE = [
    'a"quote";end;',
    "with spaces and\ttabs",
    "signal",
    "in",
    "x" * 300,
    "Ünïcödé→名前",
    "--comment\nnewline",
    "",
    "9starts_with_digit",
    "__double__underscore__",
    "SIGNAL",
]

IDENT = re.compile(r"^[a-z](?:_?[a-z0-9])*$")


def test_sanitize_gives_legal_identifiers():
    for name in HOSTILE:
        ident = sanitize(name)
        assert IDENT.match(ident), (name, ident)
        assert ident not in VHDL_RESERVED and len(ident) <= 40


def test_namer_keeps_identifiers_unique():
    namer = Namer()
    names = [namer(n) for n in HOSTILE + HOSTILE]
    assert len(set(names)) == len(names)


def test_hostile_node_and_tensor_names_simulate_bit_exact(tmp_path, ghdl, brevitas):
    path = export(make_mlp([4, 8, 8, 3], 6), tmp_path / "mlp.onnx", (1, 4))
    model = onnx.load(path)
    renames = {}
    for i, node in enumerate(model.graph.node):
        node.name = HOSTILE[i % len(HOSTILE)]
        for j, out in enumerate(node.output):
            renames[out] = f"{HOSTILE[(i + 3) % len(HOSTILE)]} {i}.{j}"
    for node in model.graph.node:
        node.input[:] = [renames.get(t, t) for t in node.input]
        node.output[:] = [renames.get(t, t) for t in node.output]
    for vi in list(model.graph.output) + list(model.graph.value_info):
        vi.name = renames.get(vi.name, vi.name)
    hostile = tmp_path / "hostile.onnx"
    onnx.save(model, hostile)

    out = tmp_path / "build"
    build(BuildConfig(model=hostile, output_dir=out))
    for vhd in (out / "hdl").glob("*.vhd"):
        assert IDENT.match(vhd.stem), vhd.name
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert simulate_build(out, x).bit_exact
