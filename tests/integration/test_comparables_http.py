"""Comparable sales over real HTTP (functions-framework on a free port) and in-process:
``"parameters": {"comparables": k}`` on predict and explain, its bad values, its limit."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import function_client
from http_server import serve

from estate.serving.responses import explanation_models, prediction_models

REPO = Path(__file__).resolve().parents[2]
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())


@pytest.fixture(scope="module")
def predict_url(ames_store: Path) -> Iterator[str]:
    with serve(ames_store, "ames") as url:
        yield url


@pytest.fixture(scope="module")
def explain_url(ames_store: Path) -> Iterator[str]:
    with serve(ames_store, "ames", "explain") as url:
        yield url


@pytest.fixture(scope="module")
def ames_sales() -> dict[str, dict[str, str]]:
    """Every sale of the data file by parcel id."""
    with gzip.open(REPO / "data" / "ames.csv.gz", "rt", newline="") as handle:
        return {r["PID"]: r for r in csv.DictReader(handle)}


def with_parameters(parameters: Any) -> dict[str, Any]:
    return {**HOUSE, "parameters": parameters}


def test_predict_with_five_comparables_returns_five_real_ames_sales(
    predict_url: str, ames_sales: dict[str, dict[str, str]]
) -> None:
    answer = requests.post(predict_url, json=with_parameters({"comparables": 5}), timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    prediction_models("price")[1].model_validate(body)  # the documented shape, exactly
    (pred,) = body["predictions"]
    sales = pred["comparables"]
    assert len(sales) == 5
    for sale in sales:
        row = ames_sales[sale["id"]]  # a real sale of the data set …
        assert sale["price"] == float(row["price"])  # … at its real price, date and place
        assert sale["sale_date"] == f"{row['Yr.Sold']}-{int(row['Mo.Sold']):02d}"
        assert sale["latitude"] == pytest.approx(float(row["Latitude"]))
        assert sale["fields"]["area"] == int(row["area"])
        assert sale["fields"]["Neighborhood"] == row["Neighborhood"].strip()
        assert sale["km"] >= 0
        for diff in sale["differences"]:
            assert diff["text"].startswith(diff.get("label", diff["feature"]) + " ")
    # The README's house is the data's first sale: it is its own nearest comparable.
    assert sales[0]["id"] == "526301100"
    assert sales[0]["price"] == 215000.0
    assert sales[0]["distance"] == pytest.approx(0.0, abs=1e-5)
    distances = [s["distance"] for s in sales]
    assert distances == sorted(distances)
    assert len({s["id"] for s in sales}) == 5


def test_without_the_parameter_the_answer_is_unchanged(predict_url: str) -> None:
    for body in (
        HOUSE,
        with_parameters({}),
        with_parameters(None),
        with_parameters({"comparables": 0}),
    ):
        answer = requests.post(predict_url, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert "comparables" not in answer.json()["predictions"][0]
        assert "comparables_unavailable" not in answer.json()


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"comparables": 21}, "parameters.comparables"),  # above the most
        ({"comparables": -1}, "parameters.comparables"),
        ({"comparables": 5.0}, "parameters.comparables"),  # a float, even a whole one
        ({"comparables": "5"}, "parameters.comparables"),  # text
        ({"comparables": True}, "parameters.comparables"),  # a boolean is not a count
        ({"comparables": None}, "parameters.comparables"),
        ({"comparables": [5]}, "parameters.comparables"),
        ({"comparables": 1e300}, "parameters.comparables"),
        ("comparables=5", "parameters"),  # not an object
        ([{"comparables": 5}], "parameters"),
        ({"comparables": 5, "top": 3}, "parameters.top"),  # unknown parameter
        ({"Comparables": 5}, "parameters.Comparables"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(
    predict_url: str, parameters: Any, field: str
) -> None:
    answer = requests.post(predict_url, json=with_parameters(parameters), timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    if field.startswith("parameters.") and field != "parameters.comparables":
        assert "the only parameter is 'comparables'" in errors[0]["message"]


def test_explain_shows_the_same_comparables(predict_url: str, explain_url: str) -> None:
    body = with_parameters({"comparables": 3}) | {"top_k": 5}
    explained = requests.post(explain_url, json=body, timeout=60)
    assert explained.status_code == 200, explained.text
    explanation_models("price")[1].model_validate(explained.json())
    predicted = requests.post(predict_url, json=with_parameters({"comparables": 3}), timeout=30)
    (item,) = explained.json()["explanations"]
    assert item["comparables"] == predicted.json()["predictions"][0]["comparables"]
    bad = requests.post(explain_url, json=body | {"parameters": {"comparables": 50}}, timeout=30)
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["parameters.comparables"]


def test_get_describes_the_comparables(predict_url: str) -> None:
    info = requests.get(predict_url, timeout=10).json()["comparables"]
    assert info["available"] is True
    assert info["rows"] == 2925
    assert info["geography"] is True
    assert "Importance-weighted distance" in info["method"]


def test_a_large_batch_asking_for_comparables_is_a_413_naming_the_parameter(
    serving_env: pytest.MonkeyPatch, ames_store: Path
) -> None:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_COMPARABLES_MAX_INSTANCES", "3")
    client = function_client("predict")
    rows = HOUSE["instances"] * 4
    answer = client.post("/", json={"instances": rows, "parameters": {"comparables": 2}})
    assert answer.status_code == 413
    assert [e["field"] for e in answer.get_json()["errors"]] == ["parameters.comparables"]
    assert client.post("/", json={"instances": rows}).status_code == 200  # no parameter: fine
    ok = client.post("/", json={"instances": rows[:3], "parameters": {"comparables": 2}})
    assert ok.status_code == 200
    assert [len(p["comparables"]) for p in ok.get_json()["predictions"]] == [2, 2, 2]
