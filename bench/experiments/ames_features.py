"""Ames CV experiments for issue 16: config-declared features, tuned members, OOF blends.

Same rows, split and folds as ``estate train --config configs/ames.toml`` (the project's
own `prepare`, with the config's derived and ordinal features, encoded by the production
encoder); each model is scored by 5-fold CV RMSE(log) on the training split, then every
subset is blended with weights fitted on out-of-fold predictions (`oof_weights`). Run:

    PYTHONPATH=. .venv/bin/python bench/experiments/ames_features.py [config] [model ...]

with model names from `MODELS` (default: all); ``--all-rows`` scores 5-fold CV on every
sale the row filter keeps (train + holdout) instead. Cheap by design: n_jobs=2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from itertools import combinations
from typing import Any

import numpy as np

from estate.training import candidates
from estate.training.config import load_config
from estate.training.data import load_table
from estate.training.evaluate import fold_indices
from estate.training.train import prepare

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "ridge10": ("ridge", {"alpha": 10.0, "scale": False}),
    "ridge": ("ridge", {"alpha": 20.0, "scale": False}),
    "ridge20": ("ridge", {"alpha": 20.0, "scale": False}),
    "lasso": ("lasso", {"alpha": 0.0004, "scale": True}),
    "enet": ("elastic_net", {"alpha": 0.0008, "l1_ratio": 0.5, "scale": True}),
    "xgb_d3_2000": (
        "xgboost",
        {
            "n_estimators": 2000,
            "learning_rate": 0.02,
            "max_depth": 3,
            "subsample": 0.7,
            "colsample_bytree": 0.3,
            "min_child_weight": 1,
            "reg_lambda": 2.0,
        },
    ),
    "xgb_d4_600": (
        "xgboost",
        {
            "n_estimators": 600,
            "learning_rate": 0.04,
            "max_depth": 4,
            "subsample": 0.7,
            "colsample_bytree": 0.3,
            "min_child_weight": 2,
            "reg_lambda": 2.0,
        },
    ),
    "xgb_d5_400": (
        "xgboost",
        {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "max_depth": 5,
            "subsample": 0.7,
            "colsample_bytree": 0.3,
            "min_child_weight": 2,
            "reg_lambda": 3.0,
        },
    ),
}


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def out_of_fold(
    make: Callable[[], Any], Z: np.ndarray, y: np.ndarray, folds: list[np.ndarray]
) -> np.ndarray:
    out = np.empty_like(y)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        out[test] = make().fit(Z[train], y[train]).predict(Z[test])
    return out


def main(argv: list[str]) -> None:
    all_rows = "--all-rows" in argv
    argv = [a for a in argv if a != "--all-rows"]
    path = argv[0] if argv else "configs/ames.toml"
    names = argv[1:] or list(MODELS)
    config = load_config(path)
    data = prepare(config, load_table(config.data))
    folds = data.folds
    if all_rows:  # every sale the row filter keeps: train + holdout, the same KFold rule
        rows = np.arange(len(data.y))
        folds = fold_indices(rows.size, data.y, config.folds, config.seed, False)
    else:
        rows = data.train
    Z, y = data.Z[rows].astype(np.float64), data.y[rows]
    print(f"{path}: {Z.shape[1]} encoded columns, {len(y)} rows", flush=True)
    oof: dict[str, np.ndarray] = {}
    for name in names:
        kind, params = MODELS[name]
        if kind == "xgboost":
            params = {**params, "n_jobs": 2}
        t0 = time.perf_counter()
        make = partial(candidates.build, kind, params, classifier=False, seed=42)
        oof[name] = out_of_fold(make, Z, y, folds)
        took = time.perf_counter() - t0
        print(f"{name:14s} CV rmse_log {rmse(y, oof[name]):.4f} ({took:.0f}s)", flush=True)
    for size in range(2, len(oof) + 1):
        for combo in combinations(oof, size):
            weights = candidates.oof_weights([oof[n] for n in combo], y)
            blend = sum(w * oof[n] for w, n in zip(weights, combo, strict=True))
            shown = ", ".join(f"{n} {w:.2f}" for n, w in zip(combo, weights, strict=True))
            print(f"blend CV rmse_log {rmse(y, np.asarray(blend)):.4f}  [{shown}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
