"""Measure what the softmax's exponent clamp (IntSoftmax `exp_clamp`, for scores a softmax reads
unquantised) costs in synthesis: the comparator of the row's distance against the table's last index and
the multiplexer that selects that index.

    python calibration/softmax_clamp.py [MODEL ...]      # corpus models of tests/frontend_models.py

The calibration sweep (calibration/sweep.py) holds no softmax with a clamp, so its weight cannot be fitted
with the others.  It is measured apart instead: each model's softmax layer is synthesised as built, and
again with the clamp taken out of its VHDL (the distance truncated to the table's address instead), all else
equal; the difference, per bit of the compared distance, is IntSoftmax's CLAMP_LUTS_PER_BIT
(qonnx_spartan/ops/softmax/int_softmax.py), added beside the fitted LUTs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

import frontend_models as fm  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402

from qonnx_spartan.model_file import load_model  # noqa: E402
from qonnx_spartan.synth import synthesise  # noqa: E402

MODELS = ("einsum_1head_po2_6bit", "einsum_2heads_unquantised_qkv_5bit", "tinytransformer_1layer_po2_8bit")
CLAMP = re.compile(
    r"( *)if unsigned\(row_max\) - unsigned\(x_rdata\) > \d+ then\n.*?\n *else\n(.*?)\n *end if;\n", re.S
)


def without_clamp(vhdl: str) -> str:
    """The softmax's VHDL with the clamp's if-else replaced by its else branch (the truncated distance)."""
    text, count = CLAMP.subn(lambda m: m.group(2).strip("\n") + "\n", vhdl)
    if count != 1:
        raise RuntimeError("the clamp's comparison is not in the softmax's VHDL")
    return text


def measure(name: str, work: Path) -> list[dict]:
    case = fm.CASES[name]
    outcome = fm.run_case(case, "torchscript", work / name, simulate=False)
    if outcome.build_dir is None:
        raise RuntimeError(f"{name}: {fm.status_line(outcome)}")
    build = outcome.build_dir
    names = json.loads((build / "report" / "build.json").read_text())["names"]["layers"]
    rows = []
    for node in load_model(build / "model_int.onnx").graph.node:
        if node.op_type != "IntSoftmax" or not getCustomOp(node).get_nodeattr("exp_clamp"):
            continue
        op = getCustomOp(node)
        edited = work / f"{name}.noclamp"
        shutil.rmtree(edited, ignore_errors=True)
        shutil.copytree(build, edited)
        vhdl = edited / "hdl" / f"{names[node.name]['entity']}.vhd"
        vhdl.write_text(without_clamp(vhdl.read_text()))
        with_clamp = synthesise(build, layers={node.name})["layers"][node.name]
        plain = synthesise(edited, layers={node.name})["layers"][node.name]
        rows.append(
            {
                "model": name,
                "layer": node.name,
                "x_bits": op.in_type().bits,
                "distance_bits": op.template_context()["distance_bits"],
                "with_clamp": with_clamp,
                "without": plain,
                "LUT": with_clamp["LUT"] - plain["LUT"],
                "FF": with_clamp["FF"] - plain["FF"],
            }
        )
    return rows


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="qs_clamp_") as tmp:
        rows = [row for name in (argv or MODELS) for row in measure(name, Path(tmp))]
    for row in rows:
        print(
            f"{row['model']:40s} {row['layer'][:40]:40s} x {row['x_bits']:2d} bits, table {row['distance_bits']} "
            f"address bits: clamp +{row['LUT']} LUT, +{row['FF']} FF"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
