"""Per-house intervals (estate.training.adaptive): normalized conformal keeps the
conformal guarantee and follows the noise, where one fixed band cannot."""

from __future__ import annotations

import numpy as np
import pytest

from estate.training.adaptive import Band, compare, covered, fit_normalized
from estate.training.evaluate import conformal_quantile, fold_indices, score_quantile

LEVEL = 0.9


def heteroscedastic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features [quiet?, x], the true mean, the noise scale and y: the noise is 5x larger
    in the noisy group and grows with x, so one band cannot fit both."""
    rng = np.random.default_rng(seed)
    noisy = rng.random(n) < 0.3
    x = rng.random(n)
    features = np.column_stack([noisy, x]).astype(np.float32)
    mean = 2.0 * x
    sigma = np.where(noisy, 0.25, 0.05) * (1.0 + x)
    return features, mean, sigma, mean + sigma * rng.standard_normal(n)


@pytest.fixture(scope="module")
def fitted() -> tuple[object, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    features, mean, _, y = heteroscedastic(2000, seed=1)
    rng = np.random.default_rng(2)
    oof = mean + 0.01 * rng.standard_normal(mean.size)  # a good model's out-of-fold errors
    folds = fold_indices(y.size, y, 5, seed=3, classifier=False)
    fit = fit_normalized(features, y, oof, folds, LEVEL, seed=0)
    test_features, test_mean, _test_sigma, test_y = heteroscedastic(20_000, seed=4)
    half = fit.quantile * fit.head.predict(test_features)
    fixed_q = conformal_quantile(y, oof, LEVEL)
    return fit, fixed_q, test_features, test_mean, test_y, half


def test_the_adaptive_band_covers_at_level_overall_and_in_each_noise_group(
    fitted: tuple[object, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    _, fixed_q, features, mean, y, half = fitted
    adaptive = np.abs(y - mean) <= half
    fixed = np.abs(y - mean) <= fixed_q
    noisy = features[:, 0] == 1
    assert 0.88 <= adaptive.mean() <= 0.93
    assert 0.88 <= fixed.mean() <= 0.93  # both are valid marginally...
    for group in (noisy, ~noisy):  # ...only the adaptive one in each group
        assert adaptive[group].mean() >= 0.86
    assert fixed[noisy].mean() < 0.8 < 0.99 < fixed[~noisy].mean()


def test_the_adaptive_band_widens_with_the_noise(
    fitted: tuple[object, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    _, fixed_q, features, _, _, half = fitted
    noisy = features[:, 0] == 1
    assert np.median(half[noisy]) > 3 * np.median(half[~noisy])  # the noise is 5x
    assert np.median(half[~noisy]) < 0.5 * fixed_q  # most rows: far narrower than fixed
    x = features[:, 1]
    assert np.median(half[~noisy & (x > 0.8)]) > np.median(half[~noisy & (x < 0.2)])


def test_the_conformal_rank_gives_at_least_level_coverage_in_finite_samples() -> None:
    """The ⌈(n+1)·level⌉-th of n exchangeable scores covers a new one with probability
    ≥ level, even for tiny n: averaged over many draws of 19 scores, 18/20 = 0.9."""
    rng = np.random.default_rng(0)
    draws = rng.random((20_000, 20))
    q = np.array([score_quantile(row[:19], LEVEL) for row in draws])
    assert (draws[:, 19] <= q).mean() == pytest.approx(18 / 20, abs=0.006)
    assert score_quantile(np.arange(1.0, 20.0), LEVEL) == 18.0
    assert score_quantile(np.arange(1.0, 5.0), LEVEL) == 4.0  # too few rows: the largest


def test_calibration_scores_never_see_their_own_residual() -> None:
    """Cross-fitting: one huge residual in the calibration set does not shrink its own
    score (its scale comes from trees that never saw it), so the quantile stays honest."""
    features, mean, _, y = heteroscedastic(1000, seed=5)
    folds = fold_indices(y.size, y, 5, seed=3, classifier=False)
    y = y.copy()
    y[0] = mean[0] + 50.0
    fit = fit_normalized(features, y, mean, folds, LEVEL, seed=0)
    others = fit.calibration_scales[1:]
    assert fit.calibration_scales[0] < np.quantile(others, 0.999)


def test_compare_reports_coverage_by_fifth_and_relative_width() -> None:
    raw = np.log(np.linspace(100_000, 300_000, 100))
    y = raw + np.where(np.arange(100) < 50, 0.05, -0.2)
    bands = [
        Band("cross_conformal", raw - 0.1, raw + 0.1),
        Band("normalized_conformal", raw - 0.3, raw + 0.3),
    ]
    fixed, adaptive = compare(bands, "normalized_conformal", y, raw, log_target=True)
    assert (fixed.served, adaptive.served) == (False, True)
    assert fixed.coverage == covered(bands[0], y).mean() == 0.5
    assert [f.coverage for f in fixed.by_fifth] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert adaptive.coverage == 1.0
    assert sum(f.rows for f in fixed.by_fifth) == 100
    assert fixed.median_relative_width == pytest.approx(np.exp(0.1) - np.exp(-0.1))
    assert adaptive.by_fifth[0].median_relative_width == pytest.approx(np.exp(0.3) - np.exp(-0.3))
