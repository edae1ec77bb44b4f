"""Metrics, cross-validation on shared folds, conformal intervals and decision thresholds."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def regression_metrics(
    y_raw: np.ndarray, pred_raw: np.ndarray, log_target: bool
) -> dict[str, float]:
    """RMSE in the model's scale (``rmse_log`` for log targets) plus MAE, R² and MAPE in units."""
    y = np.exp(y_raw) if log_target else y_raw
    pred = np.exp(pred_raw) if log_target else pred_raw
    resid = y - pred
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1.0
    out = {
        "rmse_log" if log_target else "rmse": float(np.sqrt(np.mean((y_raw - pred_raw) ** 2))),
        "mae": float(np.mean(np.abs(resid))),
        "r2": float(1 - np.sum(resid**2) / ss_tot),
        "mape": float(np.mean(np.abs(resid) / np.maximum(np.abs(y), 1e-12))),
    }
    if log_target:
        out["rmse"] = float(np.sqrt(np.mean(resid**2)))
    return out


def classification_metrics(
    y: np.ndarray, prob: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Ranking (ROC AUC), calibration (log loss, Brier) and thresholded scores."""
    from sklearn.metrics import log_loss, roc_auc_score

    label = prob >= threshold
    tp = float(np.sum(label & (y == 1)))
    fp = float(np.sum(label & (y == 0)))
    fn = float(np.sum(~label & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, prob)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y, np.clip(prob, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(np.mean((prob - y) ** 2)),
        "accuracy": float(np.mean(label == (y == 1))),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def selection_metric(classifier: bool, log_target: bool) -> tuple[str, bool]:
    """The metric candidates are ranked by, and whether higher is better."""
    if classifier:
        return "roc_auc", True
    return ("rmse_log" if log_target else "rmse"), False


def predict_raw(estimator: Any, Z: np.ndarray, classifier: bool) -> np.ndarray:
    """Model-scale predictions: positive-class probability or the regression output."""
    if classifier:
        return np.asarray(estimator.predict_proba(Z)[:, 1], dtype=np.float64)
    return np.asarray(estimator.predict(Z), dtype=np.float64)


def fold_indices(
    n: int, y: np.ndarray, folds: int, seed: int, classifier: bool
) -> list[np.ndarray]:
    """Test indices of each fold; the same folds are used for every candidate."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter: Any
    if classifier:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(n), y)]


def out_of_fold(
    make: Callable[[], Any],
    Z: np.ndarray,
    y: np.ndarray,
    folds: list[np.ndarray],
    classifier: bool,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Fit on all folds but one, predict that one; yields (fold, test idx, predictions)."""
    for i, test in enumerate(folds):
        train = np.setdiff1d(np.arange(len(y)), test)
        model = make().fit(Z[train], y[train])
        yield i, test, predict_raw(model, Z[test], classifier)


def conformal_quantile(y_raw: np.ndarray, oof_raw: np.ndarray, level: float) -> float:
    """Split-conformal quantile of |residual| with the finite-sample correction."""
    return score_quantile(np.abs(y_raw - oof_raw), level)


def score_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile of `scores`: the ⌈(n + 1)·level⌉-th smallest, so a new
    exchangeable score is at most it with probability at least `level`."""
    ordered = np.sort(scores)
    n = ordered.size
    rank = min(math.ceil((n + 1) * level), n)
    return float(ordered[rank - 1])


def best_f1_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """Probability cut-off that maximises F1 on out-of-fold predictions."""
    order = np.argsort(-prob)
    sorted_prob, sorted_y = prob[order], y[order]
    tp = np.cumsum(sorted_y)  # predicting positive for the top i+1 rows
    predicted = np.arange(1, prob.size + 1)
    f1 = 2 * tp / (predicted + sorted_y.sum())
    # Only cut where the probability changes, so ties fall on the same side.
    distinct = np.r_[sorted_prob[1:] != sorted_prob[:-1], True]
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    return float(sorted_prob[best])


def check_gates(
    metrics: dict[str, float], minimum: dict[str, float], maximum: dict[str, float]
) -> list[str]:
    """Reasons the metrics fail the gates; empty when every gate passes."""
    failures = []
    for name, bound in minimum.items():
        value = metrics.get(name)
        if value is None or not value >= bound:
            failures.append(f"{name}={value} is below the minimum {bound}")
    for name, bound in maximum.items():
        value = metrics.get(name)
        if value is None or not value <= bound:
            failures.append(f"{name}={value} is above the maximum {bound}")
    return failures
