"""Per-house intervals: normalized conformal on out-of-fold residuals, and the comparison
with the fixed band.

The fixed band is raw ± q for every house, q the conformal quantile of |y - ŷ| on
out-of-fold predictions. A normalized band is raw ± q' · s(x): s is a small model of the
expected |residual| at x (a ridge regression of log |out-of-fold residual| on the graph's
encoded features and its raw prediction, exported in the same graph:
`estate.export.scale_graph`), and q' the conformal quantile of |y - ŷ| / s(x). The
guarantee is the same as the fixed band's (split conformal on exchangeable scores): the
score of each calibration row uses a scale fitted *without* that row's residual
(cross-fitted on the training folds), as the holdout and served rows' scales are; only
the final scale model, used for serving, sees every residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estate.contract.bundle import AdaptiveInterval, FifthCoverage, IntervalComparison
from estate.export.scale_graph import ScaleHead
from estate.training.evaluate import score_quantile

#: Ridge strength of the scale model on standardized columns: strong, because log
#: |residual| is mostly noise (its signal is which kinds of house the model knows well).
SCALE_ALPHA = 300.0
#: Residuals below this fraction of the median |residual| count as it in the scale
#: model's target, so an almost exact out-of-fold prediction cannot pull log |r| to -inf.
RESIDUAL_FLOOR = 0.05
#: What the manifest says estimates the scale.
SCALE_MODEL = (
    f"ridge (alpha {SCALE_ALPHA:g}, standardized columns) of log |out-of-fold residual| "
    "on the encoded features and the raw prediction"
)


def fit_scale(
    features: np.ndarray,
    raw: np.ndarray,
    residual: np.ndarray,
    alpha: float = SCALE_ALPHA,
) -> ScaleHead:
    """Ridge of log |residual| on [features, raw], folded back to unstandardized weights,
    clipped to the range of its own fitted scales."""
    from sklearn.linear_model import Ridge

    X = np.column_stack([np.asarray(features, dtype=np.float64), raw])
    floor = RESIDUAL_FLOOR * max(float(np.median(np.abs(residual))), 1e-12)
    target = np.log(np.maximum(np.abs(residual), floor))
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    model = Ridge(alpha=alpha).fit((X - mean) / std, target)
    weights = model.coef_ / std
    bias = float(model.intercept_ - weights @ mean)
    fitted = np.exp(X @ weights + bias)
    return ScaleHead(
        weights=weights[:-1],
        raw_weight=float(weights[-1]),
        bias=bias,
        low=float(fitted.min()),
        high=float(fitted.max()),
    )


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
        head = fit_scale(features[rest], oof[rest], residual[rest])
        scales[test] = head.predict(features[test], oof[test])
    head = fit_scale(features, oof, residual)
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
