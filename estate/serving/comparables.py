"""Comparable sales at the HTTP edge: predict and explain answer them the same way.

The search itself is `estate.runtime.comparables` (numpy, on the packed rows); this
module attaches its results to each answer item, or says once per answer why a model has
none (``comparables_unavailable``: 200, the predictions are still given).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from estate.runtime.serving_model import ServingModel


def with_comparables(
    model: ServingModel,
    numeric: np.ndarray,
    categorical: np.ndarray,
    items: list[dict[str, Any]],
    k: int,
    answer: dict[str, Any],
    missing_category: np.ndarray | None = None,
) -> None:
    """Add each row's `k` comparable sales to `items` (predictions or explanations), or,
    for a model without them, say why in ``answer["comparables_unavailable"]``."""
    reason = model.no_comparables_reason
    if reason is not None:
        answer["comparables_unavailable"] = reason
        return
    sales = model.comparables(numeric, categorical, k, missing_category)
    for item, found in zip(items, sales, strict=True):
        item["comparables"] = found


def describe_comparables(model: ServingModel) -> dict[str, Any]:
    """What GET tells about comparables: the table and the similarity, or why none."""
    spec = model.manifest.comparables
    if model.comparable_sales is None or spec is None:
        return {"available": False, "reason": model.no_comparables_reason}
    return {
        "available": True,
        "rows": spec.rows,
        "fields": spec.fields,
        "features": spec.features,
        "geography": spec.geo_columns is not None,
        "method": spec.method,
    }
