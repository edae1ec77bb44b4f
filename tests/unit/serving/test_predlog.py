"""Prediction logging: the JSON lines predict writes to stdout, as Cloud Logging reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from estate.serving.predlog import trace_fields

REPO = Path(__file__).resolve().parents[3]
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]


def client() -> FlaskClient:
    from functions_framework import create_app

    return create_app(target="predict", source=str(REPO / "main.py")).test_client()


@pytest.fixture
def api(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_LOG_PROJECT", "estate-prod")
    return client()


def logged(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "prediction"]


def test_one_line_per_prediction_with_cloud_logging_fields(
    api: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    partial = {"area": 1800, "Neighborhood": "CollgCr"}
    capsys.readouterr()
    answer = api.post(
        "/",
        json={"instances": [HOUSE, partial]},
        headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
    )
    assert answer.status_code == 200
    body = answer.get_json()
    lines = logged(capsys.readouterr().out)
    assert len(lines) == 2
    first, second = lines
    assert first["severity"] == "INFO"
    assert first["logging.googleapis.com/trace"] == (
        "projects/estate-prod/traces/105445aa7843bc8bf206b12000100000"
    )
    assert first["logging.googleapis.com/spanId"] == "0000000000000001"
    assert first["logging.googleapis.com/trace_sampled"] is True
    assert first["features"] == HOUSE
    assert second["features"] == partial  # as sent: missing fields stay missing
    assert first["output"]["price"] == body["predictions"][0]["price"]
    assert first["output"]["interval"] == body["predictions"][0]["interval"]
    assert "imputed" in second["warnings"]
    assert first["model"] == body["model"]
    assert first["message"].startswith(f"prediction ames {body['model']['version']} price=")
    assert first["latency_ms"] > 0
    assert first["request_id"] == second["request_id"]
    assert [first["index"], second["index"]] == [0, 1]


def test_rejected_requests_and_sample_zero_log_nothing(
    api: FlaskClient, serving_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert api.post("/", json={"instances": [{"area": "big"}]}).status_code == 400
    assert logged(capsys.readouterr().out) == []
    serving_env.setenv("ESTATE_PREDLOG_SAMPLE", "0")
    api = client()  # a new instance: the function reads its settings once
    assert api.post("/", json={"instances": [HOUSE]}).status_code == 200
    assert logged(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            {
                "logging.googleapis.com/trace": "projects/p/traces/"
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "logging.googleapis.com/spanId": "00f067aa0ba902b7",
                "logging.googleapis.com/trace_sampled": True,
            },
        ),
        (
            {"X-Cloud-Trace-Context": "105445AA7843BC8BF206B12000100000"},
            {"logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000"},
        ),
        ({"traceparent": "garbage", "X-Cloud-Trace-Context": "nope"}, {}),
        ({}, {}),
    ],
)
def test_trace_headers(headers: dict[str, str], expected: dict[str, Any]) -> None:
    assert trace_fields(headers, "p") == expected


@pytest.mark.parametrize(
    "trace",
    [
        {},
        {
            "logging.googleapis.com/trace": "projects/p/traces/105445aa7843bc8bf206b12000100000",
            "logging.googleapis.com/spanId": "0000000000000001",
            "logging.googleapis.com/trace_sampled": True,
        },
    ],
)
def test_lines_are_what_the_contract_model_writes(trace: dict[str, Any]) -> None:
    from estate.contract.predlog import LoggedModel, PredictionLogLine, parse_log_line
    from estate.serving.predlog import prediction_lines

    rows: list[dict[str, Any]] = [
        HOUSE,
        {"area": 1e16, "Neighborhood": "Caf\u00e9", "Lot.Area": None},
    ]
    answer = {
        "model": {"name": "ames", "version": "v1"},
        "predictions": [
            {"price": 1.5e5, "interval": {"lower": 1.0, "upper": 2.5, "level": 0.9}},
            {"price": 0.1, "warnings": [{"code": "imputed", "field": "x", "message": "m"}]},
        ],
    }
    lines = prediction_lines(rows, answer, 12.3456, trace)
    for i, line in enumerate(lines):
        parsed = json.loads(line)
        want = PredictionLogLine(
            message=parsed["message"],
            event="prediction",
            model=LoggedModel(name="ames", version="v1"),
            features=rows[i],
            output={k: v for k, v in answer["predictions"][i].items() if k != "warnings"},
            warnings=[w["code"] for w in answer["predictions"][i].get("warnings", [])],
            latency_ms=12.346,
            request_id=parsed["request_id"],
            index=i,
            batch_size=2,
            **trace,
        )
        assert list(parsed) == list(json.loads(want.to_json()))  # same fields, same order
        assert parsed == json.loads(want.to_json())
        assert parse_log_line(line) == want
