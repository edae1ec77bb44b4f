"""Drift statistics: reference histograms at training time, PSI against served traffic.

The Population Stability Index of a feature compares the share of rows in each bin::

    PSI = Σ (observed_i - expected_i) · ln(observed_i / expected_i)

with shares floored at `EPSILON` so an empty bin does not divide by zero. The usual
reading: < 0.1 stable, 0.1-0.2 a moderate shift worth a look, > 0.2 a significant shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from estate.contract.bundle import (
    OTHER_CATEGORY,
    CategoricalFeature,
    CategoricalHistogram,
    DriftReference,
    NumericFeature,
    NumericHistogram,
    normalize_category,
)

BINS = 10
EPSILON = 1e-4
WARN_PSI = 0.1
DRIFT_PSI = 0.2


def numeric_histogram(values: np.ndarray, bins: int = BINS) -> NumericHistogram:
    """Cut at the training quantiles (deduplicated: integer features have few values)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return NumericHistogram(edges=[], proportions=[1.0], missing=1.0)
    inner = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(inner)
    return numeric_observed(edges.tolist(), values)


def numeric_observed(edges: Sequence[float], values: np.ndarray) -> NumericHistogram:
    """Shares of `values` in the bins of `edges` (the reference's), plus the missing share."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), finite, side="right"), minlength=len(edges) + 1
    )
    total = max(values.size, 1)
    return NumericHistogram(
        edges=list(edges),
        proportions=[float(c) / total for c in counts],
        missing=float(values.size - finite.size) / total,
    )


def categorical_observed(known: Iterable[str], values: Iterable[object]) -> CategoricalHistogram:
    """Shares of each known category; anything else goes to `OTHER_CATEGORY`."""
    known = set(known)
    counts: dict[str, int] = dict.fromkeys(sorted(known), 0)
    counts[OTHER_CATEGORY] = 0
    total = 0
    for value in values:
        text = normalize_category(value)
        counts[text if text in known else OTHER_CATEGORY] += 1
        total += 1
    return CategoricalHistogram(
        proportions={k: c / max(total, 1) for k, c in counts.items()},
    )


def build_reference(
    numeric: Sequence[NumericFeature],
    categorical: Sequence[CategoricalFeature],
    numeric_values: np.ndarray,
    categorical_values: np.ndarray,
    predictions: np.ndarray,
) -> DriftReference:
    """Reference histograms of the training rows (packed as the ONNX inputs) and predictions."""
    return DriftReference(
        rows=int(numeric_values.shape[0] if numeric else categorical_values.shape[0]),
        numeric={f.name: numeric_histogram(numeric_values[:, j]) for j, f in enumerate(numeric)},
        categorical={
            c.name: categorical_observed(c.categories, categorical_values[:, j])
            for j, c in enumerate(categorical)
        },
        prediction=numeric_histogram(predictions),
    )


def _shares(hist: NumericHistogram) -> np.ndarray:
    return np.asarray([*hist.proportions, hist.missing], dtype=np.float64)


def psi(expected: np.ndarray, observed: np.ndarray) -> float:
    """PSI of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    o = np.maximum(np.asarray(observed, dtype=np.float64), EPSILON)
    return float(np.sum((o - e) * np.log(o / e)))


def numeric_psi(reference: NumericHistogram, values: np.ndarray) -> tuple[float, str]:
    """PSI of `values` against the reference, and the bin whose share moved most."""
    observed = numeric_observed(reference.edges, values)
    e, o = _shares(reference), _shares(observed)
    worst = int(np.argmax(np.abs(o - e)))
    return psi(e, o), _bin_label(reference.edges, worst, e[worst], o[worst])


def categorical_psi(reference: CategoricalHistogram, values: Iterable[object]) -> tuple[float, str]:
    known = [k for k in reference.proportions if k != OTHER_CATEGORY]
    observed = categorical_observed(known, values)
    keys = list(observed.proportions)
    e = np.asarray([reference.proportions.get(k, 0.0) for k in keys])
    o = np.asarray([observed.proportions[k] for k in keys])
    worst = int(np.argmax(np.abs(o - e)))
    return psi(e, o), f"{keys[worst]}: {e[worst]:.1%} → {o[worst]:.1%}"


def _bin_label(edges: Sequence[float], i: int, e: float, o: float) -> str:
    if i == len(edges) + 1:
        name = "missing"
    elif not edges:
        name = "all"
    elif i == 0:
        name = f"< {edges[0]:g}"
    elif i == len(edges):
        name = f">= {edges[-1]:g}"
    else:
        name = f"[{edges[i - 1]:g}, {edges[i]:g})"
    return f"{name}: {e:.1%} → {o:.1%}"
