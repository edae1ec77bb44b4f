"""Intervals and labels are computed once (`estate.runtime.outputs`): predict, chat and
`estate score` give the same numbers and the same class names for the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from estate.batch.score import output_table
from estate.contract.bundle import DecisionThreshold, Manifest
from estate.runtime.outputs import intervals, labels
from estate.runtime.serving_model import ServingModel
from estate.serving.predict import _prediction
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


def test_a_log_price_interval_is_raw_plus_minus_the_quantile_then_exp(
    model: ServingModel,
) -> None:
    m = model.manifest
    assert m.interval is not None
    raw = np.array([11.0, 12.5, 13.25])
    bounds = intervals(raw, m)
    assert bounds is not None
    q = m.interval.quantile
    np.testing.assert_allclose(bounds, np.exp(np.stack([raw - q, raw + q], axis=1)), rtol=1e-15)
    assert model.interval(12.5) == tuple(bounds[1].tolist())
    assert labels(raw, m) is None


def test_predict_chat_and_batch_give_the_same_interval_to_the_bit(model: ServingModel) -> None:
    rows = [{"area": 900.0 + 300 * i, "Neighborhood": "NAmes"} for i in range(5)]
    numeric, categorical, _ = model.pack(model.adapter.validate_python(rows))
    prediction, raw = model.run(numeric, categorical)
    bounds = intervals(raw, model.manifest)
    assert bounds is not None
    table = output_table(model.manifest, pa.array(range(5)), prediction, raw)
    for i in range(5):
        answer = _prediction(model.manifest, float(prediction[i]), bounds[i].tolist(), None)
        lower, upper = answer["interval"]["lower"], answer["interval"]["upper"]
        assert (lower, upper) == model.interval(float(raw[i]))  # chat's estimate
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
    online = [_prediction(m, float(p), None, got[i])["label"] for i, p in enumerate(probability)]
    table = output_table(m, pa.array(range(4)), probability, probability)
    assert table["label"].to_pylist() == online == got.tolist()
    assert "lower" not in table.column_names
    assert intervals(probability, m) is None
