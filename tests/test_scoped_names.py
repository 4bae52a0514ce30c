"""torch's default exporter: nodes named by module scope from their `namespace` metadata, so a plan keyed
by Brevitas module names selects the same layers as with the TorchScript exporter."""

from __future__ import annotations

import numpy as np
from brevitas_models import make_mlp
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.flow import BuildConfig, build
from qonnx_spartan.model_file import load_model
from qonnx_spartan.plan import Namespace, Plan
from qonnx_spartan.transforms.scoped_names import ScopedNames, scope_of


def test_scope_of_a_namespace_record():
    record = (
        ": TST/layers.0: Layer/layers.0.q: brevitas.nn.quant_linear.QuantLinear/layers.0.q.weight_quant: Proxy/"
        "layers.0.q.weight_quant.export_handler: Handler/_symbolic_5: onnx_symbolic._symbolic.default"
    )
    assert scope_of(record) == ["layers.0", "q", "weight_quant", "export_handler"]


def export(model, path, dynamo):
    import torch
    from brevitas.export import export_qonnx

    export_qonnx(model, torch.randn(1, 4), export_path=str(path), **({} if dynamo else {"dynamo": False}))
    return load_model(path)


def test_both_exporters_name_the_same_modules(tmp_path, brevitas):
    model = make_mlp([4, 6, 3], 8)
    modules = []
    for dynamo in (False, True):
        exported = export(model, tmp_path / f"m{dynamo}.onnx", dynamo).transform(ScopedNames())
        modules.append(Namespace(n.name for n in exported.graph.node).modules)
    assert modules[0] == modules[1] == {"0", "1", "2", "3"}


def test_a_module_plan_applies_to_a_default_export(tmp_path, brevitas):
    model = make_mlp([4, 6, 3], 8)
    export(model, tmp_path / "m.onnx", dynamo=True)
    plan = Plan.model_validate({"1": {"weight_bits": 3, "out_mem_style": "block"}})
    lowered = build(BuildConfig(model=tmp_path / "m.onnx", output_dir=tmp_path / "b", plan=plan))
    first = getCustomOp(lowered.graph.node[0])
    assert np.abs(first.weights()).max() <= 3  # narrow 3-bit weights
    assert first.get_nodeattr("out_mem_style") == "block"
    assert np.abs(getCustomOp(lowered.graph.node[1]).weights()).max() > 3
