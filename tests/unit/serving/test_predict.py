"""The predict function in-process (functions-framework test client): answers and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from estate.contract.bundle import Manifest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def client() -> FlaskClient:
    from functions_framework import create_app

    return create_app(target="predict", source=str(REPO / "main.py")).test_client()


@pytest.fixture
def api(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return client()


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return loaded


def test_get_reports_health_model_and_schema(api: FlaskClient, ames_manifest: Manifest) -> None:
    answer = api.get("/")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok"
    assert body["model"]["name"] == "ames"
    assert body["model"]["version"] == ames_manifest.version
    props = body["instance_schema"]["properties"]
    assert set(props) == set(ames_manifest.input.names())
    assert "CollgCr" in props["Neighborhood"]["x-categories"]
    assert body["instance_schema"]["additionalProperties"] is False


def test_real_ames_house_gets_a_price_inside_its_interval(
    api: FlaskClient, ames_manifest: Manifest
) -> None:
    answer = api.post("/", json=example("predict_ames.json"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["model"] == {"name": "ames", "version": ames_manifest.version}
    (pred,) = body["predictions"]
    assert pred["interval"]["lower"] < pred["price"] < pred["interval"]["upper"]
    assert pred["interval"]["level"] == 0.9
    assert 150_000 < pred["price"] < 300_000  # this house sold for $215,000
    assert pred["warnings"] == []  # a complete record needs no imputation


def test_batch_predictions_match_the_training_pipeline(
    api: FlaskClient, ames_store: Path, ames_manifest: Manifest
) -> None:
    """Serving's packing of JSON and training's packing of a DataFrame agree exactly."""
    import numpy as np
    import pandas as pd

    from estate.runtime.session import run_graph
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore
    from estate.training.encoder import TabularEncoder

    row = example("predict_ames.json")["instances"][0]
    batch = [dict(row, area=a) for a in (900, 1400, 2000, 2600)]
    answer = api.post("/", json={"instances": batch}).get_json()
    prices = [p["price"] for p in answer["predictions"]]
    assert prices == sorted(prices)  # more living area, higher price, all else equal
    single = api.post("/", json={"instances": batch[2:3]}).get_json()["predictions"][0]["price"]
    assert single == prices[2]
    enc = TabularEncoder()
    enc.numeric_features = list(ames_manifest.input.numeric)
    enc.categorical_features = list(ames_manifest.input.categorical)
    model_bytes = read_bundle(LocalStore(ames_store), "ames").model_bytes
    expected = run_graph(model_bytes, *enc.pack(pd.DataFrame(batch)))
    np.testing.assert_allclose(prices, expected, rtol=1e-6)


def test_missing_unknown_and_out_of_range_values_are_reported(api: FlaskClient) -> None:
    partial = example("predict_partial.json")
    partial["instances"][0]["Neighborhood"] = "Atlantis"
    partial["instances"][0]["area"] = 9000
    answer = api.post("/", json=partial)
    assert answer.status_code == 200
    warnings = answer.get_json()["predictions"][0]["warnings"]
    codes = {(w["field"], w["code"]) for w in warnings}
    assert ("Neighborhood", "unknown_category") in codes
    assert ("area", "out_of_range") in codes
    assert ("Lot.Area", "imputed") in codes
    assert ("Overall.Qual", "imputed") not in codes


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"instances": [{"area": "big", "Overall.Qual": None, "Neighborhood": True, "Pool": 1}]},
            {"instances[0].area", "instances[0].Neighborhood", "instances[0].Pool"},
        ),
        ({"instances": [{"area": 1500}, {"area": [1]}]}, {"instances[1].area"}),
        ({"instances": "all"}, {"instances"}),
        ({"rows": []}, {"instances", "rows"}),
    ],
)
def test_bad_fields_are_all_named(api: FlaskClient, body: dict[str, Any], fields: set[str]) -> None:
    answer = api.post("/", json=body)
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["status"] == 400
    assert problem["title"]
    assert problem["detail"]
    assert {e["field"] for e in problem["errors"]} == fields


@pytest.mark.parametrize(
    "raw",
    [
        b'{"instances":[{"area": NaN}]}',
        b'{"instances":[{"area": Infinity}]}',
        b'{"instances":[{"area": 1e999}]}',
    ],
)
def test_non_finite_numbers_are_rejected(api: FlaskClient, raw: bytes) -> None:
    answer = api.post("/", data=raw, content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "instances[0].area"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": b"{not json", "content_type": "application/json"}, 400),
        ({"data": b'{"instances":[{"area":1,"area":2}]}', "content_type": "application/json"}, 400),
        ({"data": b'{"instances":[{"Street":"\xff"}]}', "content_type": "application/json"}, 400),
        ({"data": b"[" * 100_000 + b"]" * 100_000, "content_type": "application/json"}, 400),
        ({"json": {"instances": []}}, 400),
        ({"json": {"instances": [{}]}}, 400),
        ({"data": b'{"instances":[]}', "content_type": "text/plain"}, 415),
    ],
)
def test_malformed_requests_get_4xx(api: FlaskClient, kwargs: dict[str, Any], status: int) -> None:
    answer = api.post("/", **kwargs)
    assert answer.status_code == status
    assert answer.get_json()["status"] == status


def test_oversized_batches_and_bodies_get_413(
    api: FlaskClient, serving_env: pytest.MonkeyPatch
) -> None:
    serving_env.setenv("ESTATE_MAX_INSTANCES", "10")
    serving_env.setenv("ESTATE_MAX_REQUEST_BYTES", "2048")
    api = client()  # a new instance: the function reads its settings once
    too_many = api.post("/", json={"instances": [{"area": 1000}] * 11})
    assert too_many.status_code == 413
    assert "limit is 10" in too_many.get_json()["detail"]
    too_big = api.post("/", json={"instances": [{"Street": "x" * 3000}]})
    assert too_big.status_code == 413


def test_wrong_method_gets_405(api: FlaskClient) -> None:
    answer = api.put("/", json={})
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, POST, OPTIONS"


def test_cors_grants_only_configured_origins(api: FlaskClient) -> None:
    page = "http://localhost:8090"
    preflight = api.options("/", headers={"Origin": page, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == page
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in allowed
    assert "X-Api-Key" in allowed  # the page sends its gateway key in this header
    answer = api.post("/", json=example("predict_partial.json"), headers={"Origin": page})
    assert answer.headers["Access-Control-Allow-Origin"] == page
    stranger = api.post(
        "/", json=example("predict_partial.json"), headers={"Origin": "https://evil.example"}
    )
    assert stranger.status_code == 200  # CORS is the browser's check; the answer has no grant
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_no_model_gets_503_saying_how_to_train(
    serving_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    serving_env.setenv("ESTATE_ARTIFACTS", str(tmp_path))
    answer = client().post("/", json={"instances": [{"area": 1000}]})
    assert answer.status_code == 503
    assert "estate train" in answer.get_json()["detail"]
    assert int(answer.headers["Retry-After"]) > 0


def test_tampered_model_is_never_served(
    serving_env: pytest.MonkeyPatch, ames_store: Path, ames_manifest: Manifest, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    model = store / "models" / "ames" / ames_manifest.version / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    serving_env.setenv("ESTATE_ARTIFACTS", str(store))
    answer = client().post("/", json=example("predict_partial.json"))
    assert answer.status_code == 503
    assert "sha256" in answer.get_json()["detail"]
