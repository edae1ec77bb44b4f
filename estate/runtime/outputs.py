"""What the graph's outputs mean to a caller, once: the interval and the label.

Predict, chat (through `ServingModel.interval`), explain, `estate score`, Beam and the
BigQuery remote function all call these, so an answer online and the same row's answer
in a batch file agree to the bit.
"""

from __future__ import annotations

import numpy as np

from estate.contract.bundle import AdaptiveInterval, Manifest


def intervals(raw: np.ndarray, manifest: Manifest, scale: np.ndarray | None) -> np.ndarray | None:
    """[rows, 2] lower and upper bounds in target units; None when the bundle has no
    interval (classification).

    A fixed band is raw ± the conformal quantile; an adaptive one (``interval.adaptive``)
    is raw ± quantile · `scale`, the graph's ``scale`` output (`served_scale` keeps it
    finite and within its training range). Then the inverse transform. `scale` must be
    given for an adaptive bundle (`ServingModel.run` returns it) and is ignored otherwise.
    """
    spec = manifest.interval
    if spec is None:
        return None
    rows = np.asarray(raw, dtype=np.float64).reshape(-1, 1)
    # One broadcast add (and a multiply) and an in-place exp: a single row costs a few µs.
    if spec.adaptive is None:
        bounds: np.ndarray = rows + np.array([-spec.quantile, spec.quantile])
    else:
        if scale is None:
            raise ValueError(
                f"{manifest.name}/{manifest.version} has an adaptive interval: pass the "
                "graph's scale output (ServingModel.run returns it) to intervals()."
            )
        q = spec.adaptive.quantile
        bounds = rows + served_scale(scale, spec.adaptive).reshape(-1, 1) * np.array([-q, q])
    if manifest.output.target_transform == "log":
        np.exp(bounds, out=bounds)
    return bounds


def served_scale(scale: np.ndarray, spec: AdaptiveInterval) -> np.ndarray:
    """The scale an interval is built from: the graph's value clipped to the training
    range ``[scale_min, scale_max]`` (so 0, a negative value or -inf give the narrowest
    training band, +inf the widest) and ``scale_max`` where it is NaN. Both ends are > 0,
    so a scale can never make a bound NaN nor put lower above upper; a non-finite raw
    still gives non-finite bounds, which callers report as they do a non-finite
    prediction."""
    values = np.asarray(scale, dtype=np.float64)
    # maximum keeps NaN, fmin then replaces it with scale_max: two ufuncs, no np.clip.
    served: np.ndarray = np.fmin(np.maximum(values, spec.scale_min), spec.scale_max)
    return served


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
