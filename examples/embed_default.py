"""Pack a training run (examples/forecasting/train.py --out DIR) into the package as the embedded default.

    python examples/forecasting/train.py --window 6 --d-model 16 --heads 1 --bits 8 --po2 --out DIR
    python examples/embed_default.py DIR

writes qonnx_spartan/data/forecaster.onnx, forecaster_inputs.npy (the first test windows) and
forecaster.json (configuration, normalisation, test RMSEs of persistence, float and QAT models).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "qonnx_spartan" / "data"
INPUT_WINDOWS = 32


def main(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    qat = metrics["qat"]
    config = {k: qat[k] for k in ("window", "d_model", "heads", "bits", "plan", "po2", "seed")}
    std = metrics["target_std"]
    info = {
        "description": f"forecasting Transformer, elecdemand, window {config['window']}, d_model "
        f"{config['d_model']}, {config['heads']} head(s), {config['bits']} bits",
        "config": config,
        "target_mean": metrics["target_mean"],
        "target_std": std,
        "test_rmse_gw": {
            "persistence": metrics["persistence_test_rmse"],
            "float": metrics["float"]["test_rmse"],
            "qat": qat["test_rmse"],
        },
    }
    DATA.mkdir(exist_ok=True)
    shutil.copy(run / "model.onnx", DATA / "forecaster.onnx")
    np.save(DATA / "forecaster_inputs.npy", np.load(run / "test_x.npy")[:INPUT_WINDOWS])
    (DATA / "forecaster.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"embedded {info['description']} into {DATA}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
