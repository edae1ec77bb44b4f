"""Step 3: the chosen model's decision threshold (classification) or conformal interval
(regression), calibrated on its out-of-fold predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estate.contract.bundle import ConformalInterval, DecisionThreshold
from estate.export.scale_graph import ScaleHead
from estate.training import adaptive
from estate.training.config import DatasetConfig
from estate.training.evaluate import (
    best_f1_threshold,
    classification_metrics,
    conformal_quantile,
    predict_raw,
)
from estate.training.train._prepare import Prepared
from estate.training.train._progress import Progress
from estate.training.train._selection import Choice


@dataclass
class Calibration:
    """The best model on the holdout, and the interval (regression) or decision threshold
    (classification) calibrated on its out-of-fold predictions."""

    hold_raw: np.ndarray
    interval: ConformalInterval | None = None
    threshold: DecisionThreshold | None = None
    inside: np.ndarray | None = None  # regression: holdout rows the served interval covers
    scale: ScaleHead | None = None  # adaptive interval: the graph's scale head
    hold_scale: np.ndarray | None = None  # its scale on the holdout rows (parity reference)


def calibrate(config: DatasetConfig, data: Prepared, choice: Choice, say: Progress) -> Calibration:
    """Classification: the max-F1 decision threshold; regression: the conformal interval."""
    yho = data.y[data.holdout]
    hold_raw = predict_raw(choice.fitted, data.Z[data.holdout], config.classifier)
    ytr, oof = data.y[data.train], choice.best.oof
    if config.classifier:
        cut = best_f1_threshold(ytr, oof)
        threshold = DecisionThreshold(
            value=cut,
            criterion="max F1 on out-of-fold predictions",
            holdout_metrics=classification_metrics(yho, hold_raw, cut),
        )
        shown = ", ".join(f"{k} {v:.3f}" for k, v in threshold.holdout_metrics.items())
        say(f"decision threshold {cut:.3f}: holdout {shown}")
        return Calibration(hold_raw, threshold=threshold)
    return calibrate_interval(config, data, hold_raw, oof, say)


def calibrate_interval(
    config: DatasetConfig, data: Prepared, hold_raw: np.ndarray, oof: np.ndarray, say: Progress
) -> Calibration:
    """The fixed band and the normalized one (`estate.training.adaptive`), both calibrated
    on the out-of-fold predictions and compared on the holdout; the config's
    ``interval_method`` is served."""
    level, log_target = config.interval_level, config.target_transform == "log"
    ytr, yho = data.y[data.train], data.y[data.holdout]
    q = conformal_quantile(ytr, oof, level)
    fixed = adaptive.Band("cross_conformal", hold_raw - q, hold_raw + q)
    fit = adaptive.fit_normalized(data.Z[data.train], ytr, oof, data.folds, level, config.seed)
    hold_scale = fit.head.predict(data.Z[data.holdout])
    half = fit.quantile * hold_scale
    normalized = adaptive.Band("normalized_conformal", hold_raw - half, hold_raw + half)
    served = normalized if config.interval_method == "normalized_conformal" else fixed
    table = adaptive.compare([fixed, normalized], served.method, yho, hold_raw, log_target)
    by_method = {row.method: row for row in table}
    spec = None
    if served is normalized:
        row = by_method[normalized.method]
        spec = adaptive.adaptive_spec(fit, int(ytr.size), row.coverage, row.median_width)
    interval = ConformalInterval(
        level=level,
        quantile=q,
        calibration_rows=int(ytr.size),
        holdout_coverage=by_method[fixed.method].coverage,
        holdout_median_width=by_method[fixed.method].median_width,
        adaptive=spec,
        comparison=table,
    )
    for row in table:
        fifths = " ".join(f"{f.coverage:.0%}" for f in row.by_fifth)
        say(
            f"{level:.0%} {row.method}{' (served)' if row.served else ''}: holdout coverage "
            f"{row.coverage:.1%} (by fifth of prediction {fifths}), median relative width "
            f"{row.median_relative_width:.1%}"
        )
    return Calibration(
        hold_raw,
        interval=interval,
        inside=adaptive.covered(served, yho),
        scale=fit.head if spec is not None else None,
        hold_scale=hold_scale if spec is not None else None,
    )
