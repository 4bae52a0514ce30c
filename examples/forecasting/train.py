"""Train the forecaster (float, then QAT from the float weights) on elecdemand and export to QONNX.

    python examples/forecasting/train.py --window 12 --d-model 16 --heads 1 --bits 8 --out DIR

writes DIR/model.onnx (QONNX), DIR/metrics.json, DIR/test_x.npy (N, window, 3) and DIR/test_y.npy (N,),
both normalised (metrics.json holds the target's mean/std), and DIR/test_pred.npy: the Brevitas model's
normalised predictions for test_x, the reference a lowered integer model has to reproduce.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import FEATURES, Dataset, make_dataset  # noqa: E402
from model import build_model  # noqa: E402

from qonnx_spartan.plan import load_plan  # noqa: E402

BATCH = 256
PATIENCE = 10  # epochs without a better validation RMSE before stopping
LR_PATIENCE = 3  # ... before halving the learning rate
# Brevitas' stats-initialised activation scales settle after 300 training steps (its
# collect_stats_steps default); an early "best" from before then would be restored with raw scales.
QAT_WARMUP_STEPS = 300


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Normalised predictions (N,) in eval mode."""
    model.eval()
    out = [model(torch.from_numpy(x[i : i + batch])).reshape(-1) for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def rmse(data: Dataset, model: nn.Module, split: str) -> float:
    """RMSE in the data's units (GW): de-normalised, as the paper reports it."""
    w = getattr(data, split)
    err = data.denormalise(predict(model, w.x)) - data.denormalise(w.y)
    return float(np.sqrt(np.mean(err**2)))


def train(
    window: int = 24,
    d_model: int = 16,
    heads: int = 1,
    bits: int = 8,
    plan: dict | None = None,
    po2: bool = False,
    epochs: int = 40,
    seed: int = 0,
    quant: bool = True,
    progress: Callable[[dict], None] | None = None,
    init_from: nn.Module | None = None,
    data: Dataset | None = None,
    lr: float | None = None,
    variant: dict | None = None,
) -> tuple[nn.Module, dict]:
    """Adam on MSE with early stopping on validation RMSE; returns the best model and its metrics.

    ``init_from`` (typically the trained float model) seeds the weights and BatchNorm statistics, which
    makes QAT converge in a few epochs; ``progress`` is called with a dict after every epoch; ``variant``
    ({"norm", "act", "embed"}) picks the encoder variant (model.build_model).
    """
    with single_thread():
        return _train(
            window,
            d_model,
            heads,
            bits,
            plan,
            po2,
            epochs,
            seed,
            quant,
            progress,
            init_from,
            data or make_dataset(window),
            lr,
            variant or {},
        )


@contextlib.contextmanager
def single_thread():
    """Matrices this small gain nothing from intra-op threads, and on a shared 2-core machine extra
    threads make training up to 15x slower; one thread also makes results independent of the core
    count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(window, d_model, heads, bits, plan, po2, epochs, seed, quant, progress, init_from, data, lr, variant):
    seed_everything(seed)
    features = data.train.x.shape[-1]
    model = build_model(window, features, d_model, heads, bits, plan=plan, quant=quant, po2=po2, **variant)
    if init_from is not None:
        # Float and quantised models share parameter names; quantiser scales are not in the float one.
        _, unexpected = model.load_state_dict(init_from.state_dict(), strict=False)
        if unexpected:
            raise ValueError(f"init_from has parameters this model lacks: {unexpected}")
    lr = lr or (1e-3 if init_from is not None else 2e-3)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=LR_PATIENCE)
    loss_fn = nn.MSELoss()
    x_train = torch.from_numpy(data.train.x)
    y_train = torch.from_numpy(data.train.y)[:, None]
    gen = torch.Generator().manual_seed(seed)

    best, best_state, best_epoch, steps = float("inf"), None, 0, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            steps += 1
        val = rmse(data, model, "val")
        sched.step(val)
        settled = not quant or steps > QAT_WARMUP_STEPS
        if settled and val < best:
            best, best_state, best_epoch = val, copy.deepcopy(model.state_dict()), epoch
        if progress:
            progress(
                dict(
                    quant=quant,
                    bits=bits,
                    epoch=epoch,
                    train_mse=total / len(x_train),
                    val_rmse=val,
                    best_val_rmse=best,
                )
            )
        if settled and epoch - best_epoch >= PATIENCE:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = dict(
        window=window,
        d_model=d_model,
        heads=heads,
        bits=bits,
        plan=plan,
        po2=po2,
        quant=quant,
        seed=seed,
        epochs_run=epoch,
        best_epoch=best_epoch,
        train_seconds=round(time.perf_counter() - start, 1),
        val_rmse=rmse(data, model, "val"),
        test_rmse=rmse(data, model, "test"),
        persistence_test_rmse=data.persistence_rmse("test"),
    )
    return model, metrics


def export(model: nn.Module, path: str | Path, window: int, features: int) -> None:
    """QONNX export with the TorchScript exporter: the dynamo one silently drops the Quant nodes."""
    from brevitas.export import export_qonnx

    model.eval()
    export_qonnx(model, torch.randn(1, window, features), export_path=str(path), dynamo=False)


def train_float_then_qat(
    data: Dataset,
    window: int,
    d_model: int,
    heads: int,
    bits: int,
    plan: dict | None,
    po2: bool,
    epochs: int,
    seed: int,
    progress: Callable[[dict], None] | None = None,
    variant: dict | None = None,
):
    """The float baseline, then QAT started from its weights: (float model, its metrics, QAT model, its
    metrics)."""
    common = dict(
        window=window,
        d_model=d_model,
        heads=heads,
        bits=bits,
        epochs=epochs,
        seed=seed,
        data=data,
        progress=progress,
        variant=variant,
    )
    float_model, float_metrics = train(quant=False, **common)
    qat_model, qat_metrics = train(quant=True, plan=plan, po2=po2, init_from=float_model, **common)
    return float_model, float_metrics, qat_model, qat_metrics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--d-model", type=int, default=16)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--plan", type=Path, help="plan file, YAML or JSON {module_name: {weight_bits, act_bits}}")
    ap.add_argument("--po2", action="store_true", help="power-of-two (fixed-point) scales")
    ap.add_argument("--epochs", type=int, default=40, help="cap per phase (float, then QAT)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--norm", choices=("batch", "layer"), default="batch", help="post-norm BatchNorm or pre-norm LayerNorm"
    )
    ap.add_argument("--act", choices=("relu", "gelu"), default="relu", help="the FFN's activation")
    ap.add_argument("--embed", choices=("linear", "conv"), default="linear", help="token embedding")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    plan = load_plan(args.plan).bit_widths() if args.plan else None
    data = make_dataset(args.window)

    def log(p: dict) -> None:
        tag = f"qat{p['bits']}" if p["quant"] else "float"
        print(
            f"  {tag} epoch {p['epoch']:3d}  train_mse {p['train_mse']:.4f}  val_rmse {p['val_rmse']:.4f}", flush=True
        )

    _, float_metrics, qat_model, qat_metrics = train_float_then_qat(
        data,
        args.window,
        args.d_model,
        args.heads,
        args.bits,
        plan,
        args.po2,
        args.epochs,
        args.seed,
        log,
        variant=dict(norm=args.norm, act=args.act, embed=args.embed),
    )

    args.out.mkdir(parents=True, exist_ok=True)
    export(qat_model, args.out / "model.onnx", args.window, len(FEATURES))
    np.save(args.out / "test_x.npy", data.test.x)
    np.save(args.out / "test_y.npy", data.test.y)
    np.save(args.out / "test_pred.npy", predict(qat_model, data.test.x))
    metrics = dict(
        persistence_test_rmse=data.persistence_rmse("test"),
        float=float_metrics,
        qat=qat_metrics,
        features=list(FEATURES),
        target_mean=float(data.mean[0]),
        target_std=float(data.std[0]),
        units="GW",
    )
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"persistence test RMSE {metrics['persistence_test_rmse']:.4f} GW")
    print(f"float       test RMSE {float_metrics['test_rmse']:.4f} GW ({float_metrics['train_seconds']} s)")
    print(f"QAT {args.bits}-bit   test RMSE {qat_metrics['test_rmse']:.4f} GW ({qat_metrics['train_seconds']} s)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
