"""What the graph's outputs mean to a caller, once: the interval and the label.

Predict, chat (through `ServingModel.interval`) and `estate score` all call these, so an
answer online and the same row's answer in a batch file agree to the bit.
"""

from __future__ import annotations

import numpy as np

from estate.contract.bundle import Manifest


def intervals(raw: np.ndarray, manifest: Manifest) -> np.ndarray | None:
    """[rows, 2] lower and upper bounds in target units, from the ``raw`` output (the
    model's own scale): raw ± the conformal quantile, then the inverse transform. None
    when the bundle has no interval (classification)."""
    spec = manifest.interval
    if spec is None:
        return None
    # One broadcast add and an in-place exp: a single row costs ~2 µs, not ~6 (predict's path).
    bounds: np.ndarray = np.asarray(raw, dtype=np.float64).reshape(-1, 1) + np.array(
        [-spec.quantile, spec.quantile]
    )
    if manifest.output.target_transform == "log":
        np.exp(bounds, out=bounds)
    return bounds


def labels(prediction: np.ndarray, manifest: Manifest) -> np.ndarray | None:
    """[rows] class names: the positive label where the probability reaches the
    threshold, else the negative one (``"not <positive>"`` when the bundle names none).
    None when the bundle has no threshold (regression)."""
    threshold = manifest.threshold
    if threshold is None:
        return None
    positive = manifest.output.positive_label
    negative = manifest.output.negative_label or f"not {positive}"
    chosen = np.asarray(prediction, dtype=np.float64) >= threshold.value
    return np.where(chosen, np.array(positive, dtype=object), np.array(negative, dtype=object))
