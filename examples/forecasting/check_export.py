"""Self-check: a tiny QAT model exports to a clean QONNX graph that qonnx executes like Brevitas.

    python examples/forecasting/check_export.py

Trains one epoch of a tiny config (2 heads, so the head split is exercised), with float and with
power-of-two scales, exports each, runs the graph with qonnx's executor on a few test windows and
asserts the outputs match the Brevitas model to well under one output LSB. Prints the op types.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import FEATURES, make_dataset  # noqa: E402
from train import export, train  # noqa: E402

# The op set the integer lowering supports; anything else (Shape, Gather, Concat, Div, ...) is a bug.
ALLOWED_OPS = {
    "Quant",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Reshape",
    "Transpose",
    "Softmax",
    "BatchNormalization",
    "Relu",
    "ReduceMean",
}
WINDOW, D_MODEL, HEADS, BITS, SAMPLES = 6, 8, 2, 6, 16


def check(po2: bool, data, workdir: Path) -> None:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    model, metrics = train(window=WINDOW, d_model=D_MODEL, heads=HEADS, bits=BITS, po2=po2, epochs=1, data=data)
    path = workdir / f"tiny_po2{int(po2)}.onnx"
    export(model, path, WINDOW, len(FEATURES))
    wrapper = cleanup_model(ModelWrapper(str(path)))

    ops = sorted({n.op_type for n in wrapper.graph.node})
    print(
        f"po2={po2}: op types {ops}, "
        f"{sum(n.op_type == 'Quant' for n in wrapper.graph.node)} Quant nodes, "
        f"val RMSE after one epoch {metrics['val_rmse']:.3f} GW"
    )
    assert "Quant" in ops, "no Quant nodes: exported with the dynamo exporter?"
    assert set(ops) <= ALLOWED_OPS, f"unexpected ops {set(ops) - ALLOWED_OPS}"

    out_name = wrapper.graph.output[0].name
    out_quant = wrapper.find_producer(out_name)
    assert out_quant.op_type == "Quant", "the output must have a defined LSB"
    lsb = float(wrapper.get_initializer(out_quant.input[1]))

    x = data.test.x[:SAMPLES]
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy().reshape(-1)
    in_name = wrapper.graph.input[0].name
    got = np.array([execute_onnx(wrapper, {in_name: x[i : i + 1]})[out_name].item() for i in range(len(x))])
    diff = np.abs(got - expected).max()
    print(f"  max |qonnx - brevitas| = {diff:.3g} (output LSB {lsb:.3g})")
    assert diff < 1e-2 * lsb, "QONNX execution disagrees with Brevitas"


def main() -> None:
    data = make_dataset(WINDOW)
    with tempfile.TemporaryDirectory() as tmp:
        for po2 in (False, True):
            check(po2, data, Path(tmp))
    print("check_export: OK")


if __name__ == "__main__":
    main()
