"""The tiny Ames bundle (tests/conftest.py) declares derived and ordinal features: training
writes them into the manifest, the graph computes them from raw rows, and each candidate's
predict cost is recorded. Reuses the session's trained bundle (no extra training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from estate.contract.bundle import Manifest

REPO = Path(__file__).resolve().parents[3]


def test_manifest_lists_derived_and_ordinal_features(ames_manifest: Manifest) -> None:
    schema = ames_manifest.input
    total, age = schema.derived_features()
    assert (total.name, total.formula) == ("Total.SF", "Total.Bsmt.SF + X1st.Flr.SF + X2nd.Flr.SF")
    assert total.inputs == ["Total.Bsmt.SF", "X1st.Flr.SF", "X2nd.Flr.SF"]
    assert total.label == "Total floor area"
    assert total.unit == "sq ft"
    assert age.inputs == ["Yr.Sold", "Year.Built"]
    assert 0 <= age.min <= age.quantiles["p50"] <= age.max <= 140  # years, from training
    assert total.min < total.impute < total.max
    assert "Total.SF" not in schema.names()  # derived: never an input
    kitchen = next(c for c in schema.categorical if c.name == "Kitchen.Qual")
    assert kitchen.ordinal == ["Po", "Fa", "TA", "Gd", "Ex"]
    hood = next(c for c in schema.categorical if c.name == "Neighborhood")
    assert hood.ordinal is None  # one-hot as before


def test_every_candidate_reports_its_predict_cost(ames_manifest: Manifest) -> None:
    costs = {c.name: c.cost for c in ames_manifest.candidates}
    assert all(cost is not None for cost in costs.values())
    ridge, forest, xgb, blend = (costs[n] for n in ("ridge", "random_forest", "xgboost", "blend"))
    assert ridge is not None
    assert forest is not None
    assert xgb is not None
    assert blend is not None
    assert ridge.trees == 0
    assert ridge.shap_paths == 0
    assert xgb.trees == 120  # the config's n_estimators
    assert 120 < xgb.shap_paths <= 120 * 2**3  # depth 3: at most 8 leaves a tree
    assert forest.trees == 15
    assert blend.trees == xgb.trees
    assert blend.shap_paths == xgb.shap_paths
    assert blend.onnx_ms_per_1000_rows == pytest.approx(
        ridge.onnx_ms_per_1000_rows + xgb.onnx_ms_per_1000_rows, abs=1e-3
    )
    assert all(c.onnx_ms_per_1000_rows > 0 and c.model_bytes > 0 for c in (ridge, forest, xgb))


def test_served_graph_derives_features_from_raw_rows(ames_store: Path) -> None:
    """Predicting from raw JSON rows agrees with the explainer's re-encoding (the encoder's
    numpy twin), including a row whose derived inputs are missing."""
    from estate.runtime.serving_model import ServingModel
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    model = ServingModel(bundle.manifest, bundle.model_bytes, 1, bundle.explainer_bytes)
    (row,) = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"]
    sparse = {k: v for k, v in row.items() if k not in ("Total.Bsmt.SF", "Yr.Sold")}
    odd = row | {"Kitchen.Qual": "Superb", "Exter.Qual": None}
    numeric, categorical, _ = model.pack(model.adapter.validate_python([row, sparse, odd]))
    raw = model.run(numeric, categorical).raw
    explainer = model.explainer
    assert explainer is not None
    phi = explainer.shap(numeric, categorical)
    np.testing.assert_allclose(explainer.base + phi.sum(axis=1), raw, atol=1e-4)
    values = explainer.derived_values(numeric, categorical)
    medians = {f.name: f.impute for f in bundle.manifest.input.numeric}
    assert values[0, 0] == row["Total.Bsmt.SF"] + row["X1st.Flr.SF"] + row["X2nd.Flr.SF"]
    assert values[1, 0] == medians["Total.Bsmt.SF"] + row["X1st.Flr.SF"] + row["X2nd.Flr.SF"]
    assert values[1, 1] == medians["Yr.Sold"] - row["Year.Built"]
    assert raw[1] != raw[0]  # the median is not this house's basement
    # Outside the scale, or missing where training never saw NA: the training mode's level.
    Z = explainer.encode(numeric, categorical)
    names = explainer.layout.names
    for feature in ("Kitchen.Qual", "Exter.Qual"):
        cat = next(c for c in bundle.manifest.input.categorical if c.name == feature)
        assert cat.ordinal is not None
        assert Z[2, names.index(feature)] == cat.ordinal.index(cat.impute) + 1
