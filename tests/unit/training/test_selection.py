"""Blend weights fitted on out-of-fold predictions, and choosing a cheaper model near the
best CV (issue 14's model lever)."""

from __future__ import annotations

import numpy as np
import pytest

from estate.contract.bundle import CandidateResult, PredictCost
from estate.contract.errors import ConfigError
from estate.training import candidates
from estate.training.train import Progress, Scored, cheapest_near_best


def test_oof_weights_are_a_non_negative_mean_that_fits_the_target() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(12, 0.4, 2000)
    good = y + rng.normal(0, 0.05, y.size)
    fair = y + rng.normal(0, 0.10, y.size)
    useless = rng.normal(12, 0.4, y.size)
    weights = candidates.oof_weights([good, fair, useless], y)
    assert sum(weights) == pytest.approx(1.0, abs=1e-6)
    assert all(w >= 0 for w in weights)
    assert weights[0] == pytest.approx(0.8, abs=0.05)  # inverse-variance: 4/(4+1)
    assert weights[2] < 0.02
    mixed = np.column_stack([good, fair, useless]) @ np.asarray(weights)
    for w in ([1.0, 0, 0], [0.5, 0.5, 0]):
        other = np.column_stack([good, fair, useless]) @ np.asarray(w)
        assert np.mean((mixed - y) ** 2) <= np.mean((other - y) ** 2)


def test_blend_weights_are_numbers_or_oof() -> None:
    members = {"a": ("ridge", {}), "b": ("ridge", {"alpha": 2.0})}
    blend = candidates.build(
        "blend", {"members": ["a", "b"], "weights": "oof"}, classifier=False, seed=0,
        members=members,
    )  # fmt: skip
    assert blend.weights is None  # equal until training fits them
    with pytest.raises(ConfigError, match=r"list of numbers or 'oof'.*got 'fitted'"):
        candidates.build(
            "blend", {"members": ["a", "b"], "weights": "fitted"}, classifier=False, seed=0,
            members=members,
        )  # fmt: skip


def scored(name: str, rmse: float, ms: float | None) -> Scored:
    cost = None if ms is None else PredictCost(
        onnx_ms_per_1000_rows=ms, trees=1, shap_paths=1, model_bytes=1
    )  # fmt: skip
    result = CandidateResult(
        name=name, estimator="x", params={}, cv_metrics={"rmse_log": rmse}, cv_fold_scores=[],
        holdout_metrics={}, fit_seconds=0.0, cost=cost,
    )  # fmt: skip
    return Scored(result, np.zeros(1), np.zeros(1))


def test_cheaper_within_picks_the_cheapest_near_the_best() -> None:
    ranking = [scored("big", 0.1000, 60.0), scored("small", 0.1004, 15.0), scored("far", 0.11, 1)]
    quiet = Progress(quiet=True)
    assert cheapest_near_best(ranking, "rmse_log", False, 0.0, quiet).result.name == "big"
    assert cheapest_near_best(ranking, "rmse_log", False, 0.005, quiet).result.name == "small"
    assert cheapest_near_best(ranking, "rmse_log", False, 0.001, quiet).result.name == "big"
    unknown = [scored("big", 0.1, None), scored("small", 0.1001, 1.0)]
    assert cheapest_near_best(unknown, "rmse_log", False, 0.01, quiet).result.name == "big"
    auc = [scored("big", 0.90, 60.0), scored("small", 0.899, 10.0)]
    assert cheapest_near_best(auc, "rmse_log", True, 0.005, quiet).result.name == "small"
