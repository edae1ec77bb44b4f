"""What predict's cold start skips: the explainer (read on first use instead), while a
process that explains still builds and checks it when a bundle loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import estate.serving.versions as versions
from tests.conftest import function_client

REPO = Path(__file__).resolve().parents[3]
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]


@pytest.fixture
def env(serving_env: pytest.MonkeyPatch, ames_store: Path) -> pytest.MonkeyPatch:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_PREDLOG_SAMPLE", "0")
    return serving_env


def test_predict_loads_no_explainer_until_one_is_used(env: pytest.MonkeyPatch) -> None:
    assert function_client("predict").post("/", json={"instances": [HOUSE]}).status_code == 200
    assert versions._holder is not None
    model = versions._holder.get()
    assert model._explainer is None  # not read at load
    explainer = model.explainer  # read on first use, once
    assert explainer is not None
    assert model.explainer is explainer


def test_a_process_that_explains_builds_explainers_at_load(env: pytest.MonkeyPatch) -> None:
    predict = function_client("predict")
    explain = function_client("explain")  # built after predict: explaining wins
    assert predict.post("/", json={"instances": [HOUSE]}).status_code == 200
    assert versions._holder is not None
    assert versions._holder.get()._explainer is not None
    answer = explain.post("/", json={"instances": [HOUSE]})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_a_clean_request_builds_no_validator_and_a_bad_one_is_still_named(
    env: pytest.MonkeyPatch,
) -> None:
    client = function_client("predict")
    assert client.post("/", json={"instances": [HOUSE]}).status_code == 200
    assert versions._holder is not None
    model = versions._holder.get()
    assert model._adapter is None  # packed straight from the parsed row
    bad = client.post("/", json={"instances": [{**HOUSE, "Lot.Area": "big"}]})
    assert bad.status_code == 400, bad.get_data(as_text=True)
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in bad.get_json()["errors"]] == ["instances[0].Lot.Area"]
    assert model._adapter is not None  # the validator, built for the request that needed it
