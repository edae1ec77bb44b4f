"""Per-house intervals: normalized conformal on out-of-fold residuals, and the comparison
with the fixed band.

The fixed band is raw ± q for every house, q the conformal quantile of |y - ŷ| on
out-of-fold predictions. A normalized band is raw ± q' · s(x): s is a small model of the
expected |residual| at x (a few shallow trees fitted on out-of-fold residuals over the
graph's encoded features, exported in the same graph: `estate.export.scale_graph`), and
q' the conformal quantile of the scores |y - ŷ| / s(x).

The guarantee is the fixed band's, kept: the quantile is the ⌈(n + 1)·level⌉-th of n
scores, so a new row whose score is exchangeable with them is covered with probability at
least `level`. For that, no calibration score may see its own residual twice: ŷ is
out-of-fold (as for the fixed band), and s is cross-fitted on the same folds (each fold's
scales come from trees fitted on the other folds' residuals), as a served row's scale
comes from trees that never saw it. (Like the fixed band, it is cross-conformal: the
served model is refit on all training rows, so the holdout coverage is the check.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from estate.contract.bundle import AdaptiveInterval, FifthCoverage, IntervalComparison
from estate.export.scale_graph import ScaleHead
from estate.training.evaluate import score_quantile

#: The scale model: gradient-boosted depth-2 trees of |out-of-fold residual| on the
#: encoded features, small enough to cost microseconds in the graph. No subsampling, so
#: the interval does not depend on a seed (with subsample 0.8, five seeds moved Ames's
#: holdout coverage between 90.8 % and 92.6 %). On Ames a small grid (30-200 trees,
#: depth 2-3, leaves of 1-50 rows, with or without the raw prediction as a feature) gave
#: 90-93 % holdout coverage at 20-25 % narrower median widths than the fixed band: the
#: choice within it matters little.
SCALE_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 2,
    "learning_rate": 0.05,
    "min_samples_leaf": 20,
}
#: The smallest scale served, as a share of the median |residual|: a leaf of nearly
#: exact predictions cannot shrink a band to nothing (and a scale stays > 0).
SCALE_FLOOR = 0.05
#: What the manifest says estimates the scale.
SCALE_MODEL = (
    "gradient-boosted trees ({n_estimators} trees of depth {max_depth}) of |out-of-fold "
    "residual| on the encoded features".format(**SCALE_PARAMS)
)


def fit_scale(features: np.ndarray, residual: np.ndarray, seed: int) -> ScaleHead:
    """Trees of |residual| on the encoded features, clipped to the range of their own
    fitted values on those rows (floored at `SCALE_FLOOR` of the median |residual|)."""
    from sklearn.ensemble import GradientBoostingRegressor

    target = np.abs(residual)
    X = np.asarray(features, dtype=np.float32)
    model = GradientBoostingRegressor(random_state=seed, **SCALE_PARAMS).fit(X, target)
    fitted = model.predict(X)
    floor = SCALE_FLOOR * max(float(np.median(target)), 1e-12)
    low = max(float(fitted.min()), floor)
    return ScaleHead(estimator=model, low=low, high=max(float(fitted.max()), low))


@dataclass(frozen=True)
class NormalizedFit:
    """The served scale model and the normalized quantile calibrated for it."""

    head: ScaleHead
    quantile: float
    calibration_scales: np.ndarray  # cross-fitted scale of each calibration row


def fit_normalized(
    features: np.ndarray,
    y: np.ndarray,
    oof: np.ndarray,
    folds: list[np.ndarray],
    level: float,
    seed: int,
) -> NormalizedFit:
    """Cross-fitted normalized conformal on the training rows' out-of-fold predictions.

    For each training fold the scale model is fitted on the other folds' residuals and
    scores that fold, so no calibration score sees its own residual; the quantile of those
    scores calibrates the scale model fitted on all residuals (the one exported).
    """
    residual = y - oof
    scales = np.empty_like(residual)
    everything = np.arange(residual.size)
    for test in folds:
        rest = np.setdiff1d(everything, test)
        head = fit_scale(features[rest], residual[rest], seed)
        scales[test] = head.predict(features[test])
    head = fit_scale(features, residual, seed)
    quantile = score_quantile(np.abs(residual) / scales, level)
    return NormalizedFit(head, quantile, scales)


@dataclass(frozen=True)
class Band:
    """One interval method's bounds on the holdout, in the raw scale."""

    method: str
    lower: np.ndarray
    upper: np.ndarray


def covered(band: Band, y: np.ndarray) -> np.ndarray:
    """Which holdout rows the band covers."""
    return (band.lower <= y) & (y <= band.upper)


def compare(
    bands: list[Band],
    served: str,
    y: np.ndarray,
    raw: np.ndarray,
    log_target: bool,
    fifths: int = 5,
) -> list[IntervalComparison]:
    """Each band's holdout coverage overall and per fifth of predicted value, and its
    median width (absolute and relative to the prediction): the table the manifest, the
    model card and the README show."""
    inverse = np.exp if log_target else (lambda a: a)
    predicted = inverse(raw)
    order = np.argsort(predicted, kind="stable")
    parts = [p for p in np.array_split(order, fifths) if p.size]
    table = []
    for band in bands:
        inside = covered(band, y)
        width = inverse(band.upper) - inverse(band.lower)
        relative = width / np.maximum(np.abs(predicted), 1e-12)
        table.append(
            IntervalComparison(
                method=band.method,
                served=band.method == served,
                coverage=float(inside.mean()),
                median_width=float(np.median(width)),
                median_relative_width=float(np.median(relative)),
                by_fifth=[
                    FifthCoverage(
                        lower=float(predicted[p].min()),
                        upper=float(predicted[p].max()),
                        rows=int(p.size),
                        coverage=float(inside[p].mean()),
                        median_relative_width=float(np.median(relative[p])),
                    )
                    for p in parts
                ],
            )
        )
    return table


def adaptive_spec(
    fit: NormalizedFit, calibration_rows: int, coverage: float, median_width: float
) -> AdaptiveInterval:
    """The manifest's record of the served normalized band."""
    return AdaptiveInterval(
        quantile=fit.quantile,
        scale_min=fit.head.low,
        scale_max=fit.head.high,
        scale_model=SCALE_MODEL,
        calibration_rows=calibration_rows,
        holdout_coverage=coverage,
        holdout_median_width=median_width,
    )
