"""Intervals and labels are computed once (`estate.runtime.outputs`): predict, chat and
`estate score` give the same numbers and the same class names for the same outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from estate.batch.score import output_table
from estate.contract.bundle import AdaptiveInterval, DecisionThreshold, Manifest
from estate.runtime.outputs import intervals, labels
from estate.runtime.serving_model import ServingModel
from estate.serving.predict import _predictions
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore


@pytest.fixture(scope="module")
def model(ames_store: Path) -> ServingModel:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes)


def classifier(manifest: Manifest, positive: str, negative: str | None) -> Manifest:
    output = manifest.output.model_copy(
        update={"positive_label": positive, "negative_label": negative, "name": "probability"}
    )
    threshold = DecisionThreshold(value=0.3, criterion="f1", holdout_metrics={})
    return manifest.model_copy(update={"output": output, "threshold": threshold, "interval": None})


def fixed(manifest: Manifest) -> Manifest:
    """`manifest` as a bundle written before adaptive intervals: the fixed band only."""
    assert manifest.interval is not None
    interval = manifest.interval.model_copy(update={"adaptive": None, "comparison": None})
    return manifest.model_copy(update={"interval": interval})


def adaptive(manifest: Manifest) -> AdaptiveInterval:
    assert manifest.interval is not None
    assert manifest.interval.adaptive is not None
    return manifest.interval.adaptive


def test_a_fixed_log_price_interval_is_raw_plus_minus_the_quantile_then_exp(
    model: ServingModel,
) -> None:
    m = fixed(model.manifest)
    assert m.interval is not None
    raw = np.array([11.0, 12.5, 13.25])
    q = m.interval.quantile
    for scale in (None, np.array([0.01, 5.0, np.nan])):  # a fixed band ignores any scale
        bounds = intervals(raw, m, scale)
        assert bounds is not None
        np.testing.assert_allclose(bounds, np.exp(np.stack([raw - q, raw + q], axis=1)), 1e-15)
    assert labels(raw, m) is None


def test_an_adaptive_interval_is_raw_plus_minus_quantile_times_scale_then_exp(
    model: ServingModel,
) -> None:
    m, spec = model.manifest, adaptive(model.manifest)
    raw = np.array([11.0, 12.5, 13.25])
    scale = np.array([spec.scale_min, (spec.scale_min + spec.scale_max) / 2, spec.scale_max])
    bounds = intervals(raw, m, scale)
    assert bounds is not None
    half = spec.quantile * scale
    np.testing.assert_allclose(bounds, np.exp(np.stack([raw - half, raw + half], axis=1)), 1e-15)
    widths = np.log(bounds[:, 1]) - np.log(bounds[:, 0])
    assert widths[0] < widths[1] < widths[2]  # the band follows the row's scale
    assert model.interval(12.5, float(scale[1])) == tuple(bounds[1].tolist())


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (np.nan, "max"),
        (np.inf, "max"),
        (-np.inf, "min"),
        (0.0, "min"),
        (-1.0, "min"),
        (1e-30, "min"),
        (1e30, "max"),
    ],
)
def test_a_scale_the_graph_should_never_give_widens_the_band_never_breaks_it(
    model: ServingModel, given: float, used: str
) -> None:
    """Clipped to the training range, NaN as the widest: finite, lower < raw < upper."""
    m, spec = model.manifest, adaptive(model.manifest)
    bounds = intervals(np.array([12.0]), m, np.array([given]))
    assert bounds is not None
    assert np.isfinite(bounds).all()
    assert bounds[0, 0] < math.exp(12.0) < bounds[0, 1]
    expected = spec.scale_max if used == "max" else spec.scale_min
    assert math.log(bounds[0, 1]) - 12.0 == pytest.approx(spec.quantile * expected, rel=1e-12)


def test_an_adaptive_bundle_needs_the_scale(model: ServingModel) -> None:
    with pytest.raises(ValueError, match="pass the graph's scale output"):
        intervals(np.array([12.0]), model.manifest, None)


def test_the_ames_bundle_gives_each_house_its_own_width(model: ServingModel) -> None:
    """Ordinary houses get a narrower band than the fixed one; unusual sales a wider one."""
    m = model.manifest
    assert m.interval is not None
    rows = [
        {"area": 1500.0, "Neighborhood": "NAmes", "Sale.Condition": "Normal"},
        {"area": 1500.0, "Neighborhood": "NAmes", "Sale.Condition": "Abnorml"},
        {"area": 700.0, "Overall.Qual": 2, "Neighborhood": "IDOTRR", "Sale.Condition": "Abnorml"},
        {"area": 2800.0, "Overall.Qual": 10, "Neighborhood": "NoRidge", "Year.Built": 2008},
    ]
    numeric, categorical, _ = model.pack(model.adapter.validate_python(rows))
    _, raw, scale = model.run(numeric, categorical)
    assert scale is not None
    bounds = intervals(raw, m, scale)
    assert bounds is not None
    log_widths = np.log(bounds[:, 1]) - np.log(bounds[:, 0])
    assert len({round(w, 6) for w in log_widths.tolist()}) > 1
    assert log_widths.min() < 2 * m.interval.quantile < log_widths.max()


def test_predict_chat_and_batch_give_the_same_interval_to_the_bit(model: ServingModel) -> None:
    rows = [{"area": 900.0 + 300 * i, "Neighborhood": "NAmes"} for i in range(5)]
    numeric, categorical, _ = model.pack(model.adapter.validate_python(rows))
    prediction, raw, scale = model.run(numeric, categorical)
    assert scale is not None
    bounds = intervals(raw, model.manifest, scale)
    assert bounds is not None
    table = output_table(model.manifest, pa.array(range(5)), prediction, raw, scale)
    predicted = model.predict(rows)
    answers = _predictions(model.manifest, prediction, bounds, None)
    for i in range(5):
        answer = answers[i]
        lower, upper = answer["interval"]["lower"], answer["interval"]["upper"]
        assert (lower, upper) == model.interval(float(raw[i]), float(scale[i]))  # chat's estimate
        assert predicted[i].scale == float(scale[i])
        assert (lower, upper) == (table["lower"][i].as_py(), table["upper"][i].as_py())
        assert lower < answer["price"] < upper


@pytest.mark.parametrize(("negative", "expected"), [("current", "current"), (None, "not late")])
def test_labels_at_the_threshold_online_and_in_batch(
    model: ServingModel, negative: str | None, expected: str
) -> None:
    m = classifier(model.manifest, "late", negative)
    probability = np.array([0.0, 0.2999, 0.3, 0.9])
    got = labels(probability, m)
    assert got is not None
    assert got.tolist() == [expected, expected, "late", "late"]
    online = [answer["label"] for answer in _predictions(m, probability, None, got)]
    table = output_table(m, pa.array(range(4)), probability, probability, None)
    assert table["label"].to_pylist() == online == got.tolist()
    assert "lower" not in table.column_names
    assert intervals(probability, m, None) is None
