"""Settings per function: each function reads only its own variables, once, when main.py
builds its entry point, and passes them down."""

from __future__ import annotations

import json
from pathlib import Path

import flask
import pytest
from conftest import function_client as client
from pydantic import ValidationError

from estate.serving.function_settings import FUNCTION_SETTINGS, ChatSettings, RetrainSettings
from estate.serving.http import cors_headers
from estate.serving.settings import GuardSettings, ServingSettings

REPO = Path(__file__).resolve().parents[3]
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]


@pytest.fixture
def env(serving_env: pytest.MonkeyPatch, ames_store: Path) -> pytest.MonkeyPatch:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return serving_env


def test_a_bad_chat_variable_stops_chat_at_start_and_never_predict(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("ESTATE_DEAL_RATE", "2")  # a 200 % mortgage rate: above its bound
    with pytest.raises(ValidationError, match="deal_rate"):
        client("chat")
    assert client("predict").post("/", json={"instances": [HOUSE]}).status_code == 200


def test_a_function_reads_its_settings_once_when_built(env: pytest.MonkeyPatch) -> None:
    env.setenv("ESTATE_MAX_INSTANCES", "1")
    built = client("predict")
    env.setenv("ESTATE_MAX_INSTANCES", "5000")
    assert built.post("/", json={"instances": [HOUSE] * 2}).status_code == 413
    assert client("predict").post("/", json={"instances": [HOUSE] * 2}).status_code == 200


def test_each_function_reads_only_its_own_variables() -> None:
    serving, chat, retrain = (
        set(c.model_fields) for c in (ServingSettings, ChatSettings, RetrainSettings)
    )
    assert not {f for f in serving if f.startswith(("chat_", "llm_", "retrain_"))}
    assert not {f for f in chat if f.startswith(("retrain_", "predlog_")) or "instances" in f}
    assert retrain == {"artifacts", "vertex_endpoint"} | {
        f for f in retrain if f.startswith("retrain_")
    }
    assert "llm_api_key" not in serving | retrain  # the key reaches chat's settings only
    # Variables shared by several functions are one field each, with one default.
    for name in serving & chat:
        assert ServingSettings.model_fields[name].default == ChatSettings.model_fields[name].default
    assert {c.env_prefix for c in FUNCTION_SETTINGS} == {"ESTATE_"}


def test_the_body_guard_bounds_by_the_largest_body_of_any_function() -> None:
    def largest(model: int, chat: int, analyze: int) -> int:
        return GuardSettings(
            max_request_bytes=model, chat_max_request_bytes=chat, analyze_max_request_bytes=analyze
        ).largest_body

    assert largest(4096, 2048, 1024) == 4096
    assert largest(2048, 4096, 1024) == 4096
    assert largest(1024, 2048, 4096) == 4096


@pytest.mark.parametrize(
    ("allowed", "origin", "granted"),
    [
        (["https://a.example"], "https://a.example", "https://a.example"),
        (["https://a.example"], "https://b.example", None),
        (["*"], "https://b.example", "*"),
    ],
)
def test_cors_grants_only_the_origins_passed_in(
    allowed: list[str], origin: str, granted: str | None
) -> None:
    app = flask.Flask("t")
    with app.test_request_context("/", headers={"Origin": origin}):
        headers = cors_headers(flask.request, allowed)
    assert headers.get("Access-Control-Allow-Origin") == granted


def test_variables_are_read_in_any_case_as_text_or_json_and_checked(
    serving_env: pytest.MonkeyPatch,
) -> None:
    serving_env.setenv("ESTATE_MAX_INSTANCES", "7")
    serving_env.setenv("estate_predlog_sample", "0.5")
    serving_env.setenv("ESTATE_CORS_ORIGINS", '["https://a.example"]')
    serving_env.setenv("ESTATE_LOG_PROJECT", "p")
    s = ServingSettings()
    assert (s.max_instances, s.predlog_sample, s.log_project) == (7, 0.5, "p")
    assert s.cors_origins == ["https://a.example"]
    assert ServingSettings(max_instances=3).max_instances == 3  # passed in wins
    serving_env.setenv("ESTATE_CORS_ORIGINS", "[not json")
    with pytest.raises(ValidationError, match="cors_origins"):
        ServingSettings()
    serving_env.setenv("ESTATE_CORS_ORIGINS", '["*"]')
    serving_env.setenv("ESTATE_MAX_INSTANCES", "many")
    with pytest.raises(ValidationError, match="max_instances"):
        ServingSettings()
    serving_env.setenv("ESTATE_MAX_INSTANCES", "0")
    with pytest.raises(ValidationError, match="max_instances"):
        ServingSettings()
