"""Whatever a model calls its nodes and tensors, the VHDL is legal and the design bit-exact: every identifier
declared in the generated files is a unique, legal VHDL-93 basic identifier and no reserved word, and
GHDL analyses the files with warnings as errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from brevitas_models import export, make_mlp
from op_modules import named_examples

from qonnx_spartan import ghdl
from qonnx_spartan.backend import FILE_LIST, STATIC_FILES
from qonnx_spartan.budget import Budget
from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.names import VHDL_RESERVED, Namer, sanitize
from qonnx_spartan.ops import OPS, patterns
from qonnx_spartan.simulation import simulate_build
from qonnx_spartan.transforms.lower import absorbed_op_types

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
    "clk",  # the ports and fixed signals of the templates
    "rst",
    "qs_top",
    "buf_in",
    "Entity",  # reserved words in any case, VHDL-2008 and PSL ones
    "vunit",
    "a-b",  # names that sanitise alike
    "a_b",
    "A B",
    "y" * 41 + "1",  # names alike in their first 40 characters
    "y" * 41 + "2",
]

IDENT = re.compile(r"^[a-z](?:_?[a-z0-9])*$")
#: VHDL-93 basic_identifier ::= letter { [ underline ] letter_or_digit } (any case)
BASIC_IDENTIFIER = re.compile(r"^[A-Za-z](?:_?[A-Za-z0-9])*$")


def test_sanitize_gives_legal_identifiers():
    for name in HOSTILE:
        ident = sanitize(name)
        assert IDENT.match(ident), (name, ident)
        assert ident not in VHDL_RESERVED and len(ident) <= 40


def test_namer_keeps_identifiers_unique():
    namer = Namer()
    names = [namer(n) for n in HOSTILE + HOSTILE]
    assert len(set(names)) == len(names)


#: exported op types that start a layer, whose node names reach the VHDL: the op folders' patterns' and
#: Gemm (tidy makes it a MatMul of its name); a Quant, Relu or Mul mostly joins a layer started before it
LAYER_OPS = ({pattern.op_type for pattern in patterns()} | {"Gemm"}) - {"Quant", *absorbed_op_types()}


def hostile_copy(path: Path, out: Path) -> Path:
    """The model with its nodes renamed from HOSTILE, layers first (kept unique, or Tidy would rename them
    all), and its tensors too (made unique by a suffix)."""
    model = onnx.load(path)
    nodes = sorted(model.graph.node, key=lambda n: n.op_type not in LAYER_OPS)
    for i, node in enumerate(nodes):
        node.name = (HOSTILE[i % len(HOSTILE)] or " ") + (f" {i}" if i >= len(HOSTILE) else "")
    renames = {}
    for i, node in enumerate(model.graph.node):
        for j, tensor in enumerate(node.output):
            renames[tensor] = f"{HOSTILE[(i + 3) % len(HOSTILE)]} {i}.{j}"
    for node in model.graph.node:
        node.input[:] = [renames.get(t, t) for t in node.input]
        node.output[:] = [renames.get(t, t) for t in node.output]
    for vi in list(model.graph.output) + list(model.graph.value_info):
        vi.name = renames.get(vi.name, vi.name)
    onnx.save(model, out)
    return out


UNIT = re.compile(r"^\s*(?:entity|package(?:\s+body)?)\s+(\w+)\s+is\b|^\s*architecture\s+(\w+)\s+of\s+(\w+)\s+is\b")
OBJECTS = re.compile(r"^\s*(signal|constant|variable|alias|file)\s+([\w\s,]+?)\s*:[^=]")
TYPE = re.compile(r"^\s*(?:type|subtype)\s+(\w+)\s+is\s*(\(([\w\s,]+)\))?")
LABEL = re.compile(r"^\s*(\w+)\s*:\s*(?:entity|process|for|if|block)\b")
INTERFACE = re.compile(r"^\s*(?:port|generic)?\s*\(?\s*([\w\s,]+?)\s*:\s*(?:in|out|inout|buffer)?\s*\w+")
SUBPROGRAM = re.compile(r"^\s*(?:pure\s+|impure\s+)?(?:function|procedure)\s+(\w+)\s*\(([^)]*)\)")
LOOP = re.compile(r"\bfor\s+(\w+)\s+in\b")


def declarations(vhd: Path) -> tuple[list[str], list[str]]:
    """(identifiers a design unit declares at its top: units, ports, generics, signals, constants, types,
    enumeration literals, labels; identifiers local to a process or subprogram: variables, parameters,
    loop indices).  A line-based reading of the subset of VHDL the templates write."""
    unit, local = [], []
    in_interface = in_local = False
    for raw in vhd.read_text().splitlines():
        line = raw.split("--")[0]
        if not line.strip():
            continue
        if m := UNIT.match(line):
            unit += [g for g in m.groups()[:2] if g]
            continue
        if re.match(r"^\s*(port|generic)\b", line):
            in_interface = True
        if in_interface:
            if m := INTERFACE.match(line):
                unit += re.split(r"\s*,\s*", m.group(1).strip())
            in_interface = not line.rstrip().endswith(");")
            continue
        if m := SUBPROGRAM.match(line):
            unit.append(m.group(1))
            local += [n.strip() for part in m.group(2).split(";") for n in part.split(":")[0].split(",")]
        if re.match(r"^\s*(?:\w+\s*:\s*)?process\b|^\s*(?:pure\s+|impure\s+)?function\b", line):
            in_local = True
        if re.match(r"^\s*end\s+(process|function)\b", line):
            in_local = False
        if m := OBJECTS.match(line):
            names = re.split(r"\s*,\s*", m.group(2).strip())
            (local if in_local or m.group(1) == "variable" else unit).extend(names)
        if m := TYPE.match(line):
            unit.append(m.group(1))
            if m.group(3):
                unit += re.split(r"\s*,\s*", m.group(3).strip())  # enumeration literals
        if m := LABEL.match(line):
            unit.append(m.group(1))
        local += LOOP.findall(line)
    return unit, local


def check_identifiers(hdl: Path) -> int:
    """Every declared identifier legal and not reserved; the generated files' own declarations unique
    (VHDL ignores case); one entity per generated file, named like it.  Returns how many were checked."""
    entities, checked = [], 0
    for name in (hdl / FILE_LIST).read_text().split():
        unit, local = declarations(hdl / name)
        for ident in unit + local:
            assert BASIC_IDENTIFIER.match(ident), (name, ident)
            assert ident.lower() not in VHDL_RESERVED, (name, ident)
        checked += len(unit) + len(local)
        if name in STATIC_FILES:
            continue
        lowered = [u.lower() for u in unit]
        duplicates = {u for u in lowered if lowered.count(u) > 1}
        assert not duplicates, (name, duplicates)
        entities.append(Path(name).stem)
        assert Path(name).stem in lowered, name
    assert len(set(entities)) == len(entities)
    return checked


def check_ghdl_analysis(build_dir: Path, tmp: Path) -> None:
    """The analysis the simulator runs (ghdl.analyse, warnings as errors) accepts every file, and does
    reject a warning: a variable that hides a signal (GHDL's default -Whide)."""
    sources = ghdl.design_sources(build_dir) + [build_dir / "sim" / "qs_top_tb.vhd"]
    ghdl.analyse(sources, tmp)
    warning = tmp / "hides.vhd"
    warning.write_text(
        "entity hides is end entity;\narchitecture a of hides is\n  signal x : bit;\nbegin\n"
        "  p : process\n    variable x : bit;\n  begin\n    wait;\n  end process;\nend architecture;\n"
    )
    with pytest.raises(RuntimeError, match="hides"):
        ghdl.analyse([warning], tmp)


def test_hostile_node_and_tensor_names_simulate_bit_exact(tmp_path, ghdl, brevitas):
    path = export(make_mlp([4, 8, 8, 3], 6), tmp_path / "mlp.onnx", (1, 4))
    hostile = hostile_copy(path, tmp_path / "hostile.onnx")
    out = tmp_path / "build"
    lowered = build(BuildConfig(model=hostile, output_dir=out, lanes=2))
    assert [n.name for n in lowered.graph.node] == HOSTILE[:3]  # the names reach the backend
    for vhd in (out / "hdl").glob("*.vhd"):
        assert IDENT.match(vhd.stem), vhd.name
    assert check_identifiers(out / "hdl") > 300
    check_ghdl_analysis(out, tmp_path)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert simulate_build(out, x).bit_exact


def test_hostile_names_in_every_template(tmp_path, ghdl, brevitas):
    """Each op test module's named example (tests/op_modules.py), renamed hostile: together every
    registered op."""
    used = set()
    for name, example in named_examples().items():
        (tmp_path / name).mkdir()
        path, declared = example(tmp_path / name)
        out = tmp_path / name / "build"
        hostile = hostile_copy(path, tmp_path / name / "hostile.onnx")
        lowered = build(BuildConfig(model=hostile, output_dir=out, budget=Budget(device="xc7s50")))
        used |= {n.op_type for n in lowered.graph.node}
        assert check_identifiers(out / "hdl") > declared, name
        (tmp_path / name / "ghdl").mkdir()
        check_ghdl_analysis(out, tmp_path / name / "ghdl")
    assert set(OPS) <= used, set(OPS) - used


def test_identifier_check_can_fail(tmp_path):
    """The reader finds a duplicate (in another case) and an illegal identifier."""
    hdl = tmp_path / "hdl"
    hdl.mkdir()
    (hdl / FILE_LIST).write_text("l0_a.vhd\n")
    body = "entity l0_a is\n  port (\n    clk : in bit);\nend entity;\narchitecture rtl of l0_a is\n{}begin\nend;\n"
    (hdl / "l0_a.vhd").write_text(body.format("  signal Clk : bit;\n"))
    with pytest.raises(AssertionError, match="clk"):
        check_identifiers(hdl)
    (hdl / "l0_a.vhd").write_text(body.format("  signal a__b : bit;\n"))
    with pytest.raises(AssertionError, match="a__b"):
        check_identifiers(hdl)
