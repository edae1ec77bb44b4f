"""The explain function on the tiny Ames bundle: additivity, readable answers, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from estate.contract.bundle import Manifest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def served(ames_store: Path) -> Any:
    """The served Ames model, loaded as serving loads it (checksums verified)."""
    from estate.runtime.serving_model import ServingModel
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes, 1, bundle.explainer_bytes)


@pytest.fixture
def api(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    from functions_framework import create_app

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return create_app(target="explain", source=str(REPO / "main.py")).test_client()


def holdout_instances(config: Path) -> list[dict[str, Any]]:
    """The holdout rows training scored, as JSON instances (NaN → missing)."""
    from estate.training.config import load_config
    from estate.training.data import load_table
    from estate.training.train import prepare

    data = prepare(load_config(config), load_table(str(REPO / "data" / "ames.csv.gz")))
    frame = data.features.iloc[data.holdout]
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows


def test_manifest_describes_the_explainer(ames_manifest: Manifest) -> None:
    spec = ames_manifest.explainer
    assert spec is not None
    assert spec.scale == "raw"
    assert set(spec.members.values()) <= {"linear", "xgboost", "random_forest"}
    derived = [d.name for d in ames_manifest.input.derived_features()]
    assert derived == ["Total.SF", "Age"]  # the tiny config derives these in the graph
    assert set(spec.global_importance) == set(ames_manifest.input.names()) | set(derived)
    ranked = list(spec.global_importance.values())
    assert ranked == sorted(ranked, reverse=True)
    assert ranked[0] > 0
    assert spec.additivity_max_abs_error < 1e-4
    assert 11.5 < spec.base_value < 12.5  # log of a typical Ames price


def test_additivity_on_every_ames_holdout_row(served: Any, tiny_ames_config: Path) -> None:
    """base + Σ contributions = the served ONNX output (log price), for all 585 rows."""
    from estate.runtime.explanations import explain_instances

    instances = holdout_instances(tiny_ames_config)
    assert len(instances) == served.manifest.training["rows_holdout"]
    numeric, categorical, _ = served.pack(served.adapter.validate_python(instances))
    raw = served.run(numeric, categorical).raw
    phi = served.explainer.shap(numeric, categorical)
    assert np.abs(served.explainer.base + phi.sum(axis=1) - raw).max() < 1e-4
    answers = explain_instances(served, instances)
    for answer, r in zip(answers, raw, strict=True):
        total = answer["base_value"]["shap"] + sum(c["shap"] for c in answer["contributions"])
        assert total == pytest.approx(r, abs=1e-4)
        assert math.log(answer["price"]) == pytest.approx(r, abs=1e-4)


def test_real_house_reads_as_dollars_and_factors(served: Any) -> None:
    from estate.runtime.explanations import explain_instances

    (answer,) = explain_instances(served, example("predict_ames.json")["instances"], top_k=5)
    contributions = answer["contributions"]
    assert len(contributions) == 5
    sizes = [abs(c["shap"]) for c in contributions]
    assert sizes == sorted(sizes, reverse=True)
    for c in contributions:
        assert c["factor"] == pytest.approx(math.exp(c["shap"]))
        assert (c["effect"] > 0) == (c["shap"] > 0)
    rest = answer["other_features"]
    reported = len(served.feature_names) + len(served.manifest.input.derived_features())
    assert rest["features"] == reported - 5
    base_price = answer["base_value"]["price"]
    assert base_price == pytest.approx(math.exp(answer["base_value"]["shap"]))
    effects = sum(c["effect"] for c in contributions) + rest["effect"]
    assert base_price + effects == pytest.approx(answer["price"], rel=1e-5)
    (full,) = explain_instances(served, example("predict_ames.json")["instances"])
    by_name = {c["feature"]: c for c in full["contributions"]}
    assert len(by_name) == reported
    total = by_name["Total.SF"]  # a derived feature: reported as itself, with its formula
    assert total["formula"] == "Total.Bsmt.SF + X1st.Flr.SF + X2nd.Flr.SF"
    assert total["inputs"] == ["Total.Bsmt.SF", "X1st.Flr.SF", "X2nd.Flr.SF"]
    assert total["label"] == "Total floor area"
    assert total["unit"] == "sq ft"
    row = example("predict_ames.json")["instances"][0]
    assert total["value"] == row["Total.Bsmt.SF"] + row["X1st.Flr.SF"] + row["X2nd.Flr.SF"]
    assert by_name["Age"]["value"] == row["Yr.Sold"] - row["Year.Built"]
    assert by_name["Kitchen.Qual"]["value"] == row["Kitchen.Qual"]  # ordinal: still its text
    assert by_name["Overall.Qual"]["value"] == 6
    assert isinstance(by_name["Overall.Qual"]["value"], int)  # an integer feature
    assert by_name["Longitude"]["value"] == pytest.approx(-93.619754)
    assert by_name["Neighborhood"]["value"] == "NAmes"
    assert answer["warnings"] == []


def test_missing_features_are_imputed_flagged_and_still_add_up(served: Any) -> None:
    from estate.runtime.explanations import explain_instances

    (answer,) = explain_instances(served, example("predict_partial.json")["instances"])
    derived = {d.name: d for d in served.manifest.input.derived_features()}
    flagged = {c["feature"] for c in answer["contributions"] if c.get("imputed")}
    warned = {w["field"] for w in answer["warnings"] if w["code"] == "imputed"}
    assert flagged - set(derived) == warned
    assert flagged
    # A derived feature is flagged exactly when one of its inputs was imputed.
    assert flagged & set(derived) == {n for n, d in derived.items() if set(d.inputs) & warned}
    imputes = {f.name: f.impute for f in served.manifest.input.numeric}
    imputes |= {f.name: f.impute for f in served.manifest.input.categorical}
    for c in answer["contributions"]:
        if c.get("imputed") and c["feature"] not in derived:
            assert c["value"] == imputes[c["feature"]]
    total = answer["base_value"]["shap"] + sum(c["shap"] for c in answer["contributions"])
    assert math.exp(total) == pytest.approx(answer["price"], rel=1e-4)


def test_bad_fields_get_the_same_400_as_predict(served: Any) -> None:
    from estate.contract.errors import InvalidInputError
    from estate.runtime.explanations import explain_instances
    from estate.serving.problems import problem_for

    with pytest.raises(InvalidInputError) as caught:
        explain_instances(served, example("predict_bad.json")["instances"])
    assert problem_for(caught.value).status == 400
    fields = {e.field for e in caught.value.errors}
    assert {"instances[0].area", "instances[0].Neighborhood", "instances[0].Pool"} <= fields


def test_bundle_without_explainer_answers_501(ames_store: Path) -> None:
    from estate.contract.errors import NotExplainableError
    from estate.runtime.explanations import explain_instances
    from estate.runtime.serving_model import ServingModel
    from estate.serving.problems import problem_for
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    plain = ServingModel(bundle.manifest.model_copy(update={"explainer": None}), bundle.model_bytes)
    with pytest.raises(NotExplainableError) as caught:
        explain_instances(plain, example("predict_ames.json")["instances"])
    assert problem_for(caught.value).status == 501
    assert "without an explainer" in caught.value.detail


def test_get_lists_global_importance(api: FlaskClient, ames_manifest: Manifest) -> None:
    body = api.get("/").get_json()
    assert body["status"] == "ok"
    assert body["model"]["version"] == ames_manifest.version
    assert ames_manifest.explainer is not None
    assert body["explainer"]["kind"] == ames_manifest.explainer.kind
    names = [g["feature"] for g in body["global_importance"]]
    assert names == list(ames_manifest.explainer.global_importance)
    assert "properties" in body["instance_schema"]


def test_post_explains_and_validates_the_envelope(api: FlaskClient) -> None:
    answer = api.post("/", json={**example("predict_ames.json"), "top_k": 3})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (item,) = answer.get_json()["explanations"]
    assert len(item["contributions"]) == 3
    for bad, field in (({"top_k": 0}, "top_k"), ({"top_k": "3"}, "top_k"), ({"k": 1}, "k")):
        answer = api.post("/", json={**example("predict_ames.json"), **bad})
        assert answer.status_code == 400
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert [e["field"] for e in answer.get_json()["errors"]] == [field]
    assert api.post("/", json={"instances": []}).status_code == 400
    assert api.post("/", json={"instances": [{}]}).status_code == 400
    assert api.put("/", json={}).status_code == 405


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_a_damaged_explainer_file_is_refused(
    ames_store: Path, ames_manifest: Manifest, tmp_path: Path, damage: str
) -> None:
    from estate.contract.errors import BundleError
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    path = store / "models" / "ames" / ames_manifest.version / "explainer.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.unlink()
    with pytest.raises(BundleError, match=r"explainer\.npz"):
        read_bundle(LocalStore(store), "ames")


def test_explain_over_http_with_functions_framework(ames_store: Path) -> None:
    import requests
    from http_server import serve

    with serve(ames_store, "ames", target="explain") as url:
        answer = requests.post(url, json={**example("predict_ames.json"), "top_k": 4}, timeout=30)
        assert answer.status_code == 200, answer.text
        (item,) = answer.json()["explanations"]
        sizes = [abs(c["shap"]) for c in item["contributions"]]
        assert len(sizes) == 4
        assert sizes == sorted(sizes, reverse=True)
        effects = sum(c["effect"] for c in item["contributions"]) + item["other_features"]["effect"]
        assert item["base_value"]["price"] + effects == pytest.approx(item["price"], rel=1e-5)
        bad = requests.post(url, json=example("predict_bad.json"), timeout=30)
        assert bad.status_code == 400
        assert bad.headers["Content-Type"] == "application/problem+json"
        health = requests.get(url, timeout=30).json()
        assert health["status"] == "ok"
        schema = health["instance_schema"]
        derived = [d["name"] for d in schema["x-derived"]]  # documented, never sent
        assert derived == ["Total.SF", "Age"]
        assert "Total.SF = Total.Bsmt.SF + X1st.Flr.SF + X2nd.Flr.SF" in schema["description"]
        assert not set(derived) & set(schema["properties"])
        assert "derives Total.SF" in schema["properties"]["X1st.Flr.SF"]["description"]
        assert schema["properties"]["Kitchen.Qual"]["x-ordinal"] == ["Po", "Fa", "TA", "Gd", "Ex"]
        assert len(health["global_importance"]) == len(schema["properties"]) + len(derived)


def test_write_bundle_keeps_explainer_file_and_manifest_together(
    ames_store: Path, tmp_path: Path
) -> None:
    from estate.contract.errors import BundleError
    from estate.storage.registry import read_bundle, write_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    assert bundle.explainer_bytes is not None
    target = LocalStore(tmp_path)
    card = bundle.card_bytes
    plain = bundle.manifest.model_copy(update={"explainer": None})
    with pytest.raises(BundleError, match="come together"):
        write_bundle(target, plain, bundle.model_bytes, bundle.explainer_bytes, card)
    with pytest.raises(BundleError, match="truncated or altered"):
        write_bundle(target, bundle.manifest, bundle.model_bytes, bundle.explainer_bytes[:-1], card)
    table = bundle.comparables_bytes
    write_bundle(target, bundle.manifest, bundle.model_bytes, bundle.explainer_bytes, card, table)
    again = read_bundle(target, "ames", bundle.manifest.version)
    assert again.explainer_bytes == bundle.explainer_bytes
