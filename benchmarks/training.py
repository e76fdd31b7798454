"""Benchmark: our torch MLP training (features, fit with a validation split, MLflow tracking) against a plain
hand-written torch loop on the same data, epochs, batch size, network and seed, in one run.

Ours is what the train step does for `model.trainer: torch_mlp`: `train_model` (the contract's feature pipeline
fitted and applied, the MLP fitted with its per-epoch validation loss) plus the tracking (params, per-epoch
curves, the logged MLflow model) into a throw-away sqlite store. The plain side prepares the same features with
pandas/numpy (median impute, standardize, one-hot) and runs the textbook loop: shuffled mini-batches, Adam,
cross-entropy, a validation loss per epoch, no tracking. Early stopping is off on both sides (patience = epochs),
so both run every epoch. After a warm-up, the two alternate (who goes first alternates too), `--repeat` times
each; the ratio of the medians is printed.

    .venv/bin/python benchmarks/training.py [--rows 200000] [--epochs 8] [--repeat 5]
    .venv/bin/python benchmarks/training.py --quick     # a smoke run (CI): 3,000 rows, 1 epoch, once
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from ml_lifecycle import tracking
from ml_lifecycle.contracts import infer_contract
from ml_lifecycle.data import make_demo_data, split
from ml_lifecycle.experiment import experiment_from_dict
from ml_lifecycle.settings import settings_from_raw
from ml_lifecycle.training import train_model, training_curves

HIDDEN, BATCH, LR, WD, DROPOUT, VAL = (64, 32), 256, 1e-3, 1e-4, 0.1, 0.15


def ours(train: pd.DataFrame, contract, epochs: int, seed: int, settings) -> tuple[float, float]:
    t0 = time.perf_counter()
    exp = experiment_from_dict({"seed": seed, "model": {"trainer": "torch_mlp", "class_weight": "balanced", "params": {
        "hidden": list(HIDDEN), "batch_size": BATCH, "lr": LR, "weight_decay": WD, "dropout": DROPOUT,
        "max_epochs": epochs, "patience": epochs, "validation_fraction": VAL}}})
    model = train_model(train, contract, exp)
    fit = time.perf_counter() - t0
    run_id = tracking.start_run(settings, "bench")
    tracking.log_params(run_id, {"trainer": "torch_mlp", "seed": seed, **{f"model.{k}": v for k, v in exp.model.params.items()}})
    tracking.log_curves(run_id, training_curves(model))
    tracking.log_model(run_id, model, contract)
    tracking.end_run(run_id)
    assert len(training_curves(model)) == epochs
    return time.perf_counter() - t0, fit


def plain(train: pd.DataFrame, target: str, epochs: int, seed: int) -> float:
    t0 = time.perf_counter()
    y = train[target].to_numpy()
    X = train.drop(columns=[target, "customer_id"])
    num = X.select_dtypes("number")
    num = (num.fillna(num.median()) - num.fillna(num.median()).mean()) / num.fillna(num.median()).std()
    cat = pd.get_dummies(X.select_dtypes(exclude="number").fillna("__missing__").astype(str), dtype=np.float32)
    features = np.hstack([num.to_numpy(np.float32), cat.to_numpy(np.float32)])
    fit_rows, val_rows = train_test_split(np.arange(len(y)), test_size=VAL, random_state=seed, stratify=y)
    Xt, yt = torch.as_tensor(features), torch.as_tensor(y.astype(np.int64))
    X_fit, y_fit, X_val, y_val = Xt[fit_rows], yt[fit_rows], Xt[val_rows], yt[val_rows]
    counts = np.bincount(y)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(len(y) / (2 * counts), dtype=torch.float32))
    torch.manual_seed(seed)
    layers, width = [], features.shape[1]
    for h in HIDDEN:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT)]
        width = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 2))
    opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WD)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(X_fit), generator=gen)
        for start in range(0, len(X_fit), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss = loss_fn(net(X_fit[idx]), y_fit[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            loss_fn(net(X_val), y_val).item()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3,000 rows, 1 epoch, once")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.epochs, args.repeat = 3_000, 1, 1
    demo = make_demo_data(args.rows, seed=1)
    contract = infer_contract(demo, "defaulted", name="bench")
    train, _ = split(demo, "defaulted")
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    settings = settings_from_raw({"project": {"name": "bench"}, "data": {"path": "d.csv", "contract": "c.yaml"},
                                  "registry": {"model_name": "bench"}}, tmp)
    print(f"{len(train)} training rows, {args.epochs} epochs, batch {BATCH}, network {HIDDEN}, "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads")
    ours_t, fit_t, plain_t = [], [], []
    plain(train, "defaulted", 1, 0)  # warm-up: torch's first use (kernels, allocator) is paid by neither side
    for i in range(args.repeat):
        first_plain = i % 2 == 1  # alternate who goes first: this machine drifts between runs
        if first_plain:
            plain_t.append(plain(train, "defaulted", args.epochs, i))
        total, fit = ours(train, contract, args.epochs, i, settings)
        ours_t.append(total)
        fit_t.append(fit)
        if not first_plain:
            plain_t.append(plain(train, "defaulted", args.epochs, i))
        print(f"  round {i + 1}: ours {total:.2f} s (fit {fit:.2f} s, tracking {total - fit:.2f} s), "
              f"plain loop {plain_t[-1]:.2f} s")
    o, p = statistics.median(ours_t), statistics.median(plain_t)
    print(f"median: ours {o:.2f} s (fit {statistics.median(fit_t):.2f} s), plain {p:.2f} s")
    print(f"ratio ours/plain = {o / p:.3f}x (overhead {(o / p - 1) * 100:+.1f}%; goal <= +10%)")


if __name__ == "__main__":
    main()
