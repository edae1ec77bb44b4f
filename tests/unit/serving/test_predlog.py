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


TRACE = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
CLOUD_LOGGING = {
    "severity": "INFO",
    "logging.googleapis.com/trace": "projects/estate-prod/traces/105445aa7843bc8bf206b12000100000",
    "logging.googleapis.com/spanId": "0000000000000001",
    "logging.googleapis.com/trace_sampled": True,
    "event": "prediction",
}


def test_one_instance_is_one_line_with_cloud_logging_fields(
    api: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    partial = {"area": 1800, "Neighborhood": "CollgCr"}
    capsys.readouterr()
    answer = api.post("/", json={"instances": [partial]}, headers=TRACE)
    assert answer.status_code == 200
    body = answer.get_json()
    (line,) = logged(capsys.readouterr().out)
    assert {k: line.get(k) for k in CLOUD_LOGGING} == CLOUD_LOGGING
    assert "kind" not in line  # the per-row line, as before batch lines
    assert line["features"] == partial  # as sent: missing fields stay missing
    assert line["output"]["price"] == body["predictions"][0]["price"]
    assert line["output"]["interval"] == body["predictions"][0]["interval"]
    assert "imputed" in line["warnings"]
    assert line["model"] == body["model"]
    assert line["message"].startswith(f"prediction ames {body['model']['version']} price=")
    assert line["latency_ms"] > 0
    assert (line["index"], line["batch_size"]) == (0, 1)


#: Rows of every shape a batch may hold: complete, a few columns, a null, one field.
ROWS: list[dict[str, Any]] = [
    HOUSE,
    {"area": 1800, "Neighborhood": "CollgCr"},
    {"area": 950, "Lot.Area": None, "Alley": None},
    {"Year.Built": 2001},
]


def as_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The columnar body of `rows`: every feature any row sent, null where a row has none."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return {n: [r.get(n) for r in rows] for n in names}


@pytest.mark.parametrize("form", ["instances", "inputs"])
def test_a_batch_is_logged_as_batch_lines_whose_rows_read_back_as_sent(
    api: FlaskClient, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    from estate.contract.predlog import PredictionBatchLine, parse_log_line

    sent = ROWS if form == "instances" else as_columns(ROWS)
    capsys.readouterr()
    answer = api.post("/", json={form: sent}, headers=TRACE)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    out = capsys.readouterr().out
    (line,) = logged(out)
    assert {k: line.get(k) for k in CLOUD_LOGGING} == CLOUD_LOGGING
    assert line["kind"] == "batch"
    assert line[form] == sent  # the features as sent, in the body's own form
    assert ("inputs" if form == "instances" else "instances") not in line
    assert line["outputs"]["price"] == [p["price"] for p in body["predictions"]]
    assert line["warnings"] == [[w["code"] for w in p["warnings"]] for p in body["predictions"]]
    assert (line["index"], line["count"], line["batch_size"]) == (0, 4, 4)
    assert line["message"] == f"prediction ames {body['model']['version']} rows 0-3 of 4"
    parsed = parse_log_line(out.splitlines()[-1])
    assert isinstance(parsed, PredictionBatchLine)
    rows = parsed.rows()
    expected = (
        ROWS
        if form == "instances"
        else [dict(zip(sent, c, strict=True)) for c in zip(*sent.values(), strict=True)]
    )
    assert [r.features for r in rows] == expected  # columnar: a null cell stays a null
    assert [r.output for r in rows] == [
        {k: v for k, v in p.items() if k != "warnings"} for p in body["predictions"]
    ]
    assert "imputed" in rows[1].warnings
    assert [r.index for r in rows] == [0, 1, 2, 3]
    assert {(r.request_id, r.batch_size, r.trace) for r in rows} == {
        (line["request_id"], 4, CLOUD_LOGGING["logging.googleapis.com/trace"])
    }


def test_a_large_batch_logs_its_summary_once_and_never_comparables_nor_headers(
    api: FlaskClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ESTATE_ROW_WARNINGS_MAX_INSTANCES (100) the answer has a warning_summary, not
    per-row warnings; small chunks (patched) give several lines of one request."""
    import estate.serving.predlog as predlog
    from estate.contract.predlog import PredictionBatchLine, parse_log_line

    monkeypatch.setattr(predlog, "CHUNK_BYTES", 6_000)
    rows = [ROWS[i % len(ROWS)] for i in range(150)]
    capsys.readouterr()
    answer = api.post(
        "/",
        json={"instances": rows, "parameters": {"comparables": 2}},
        headers={"Authorization": "Bearer s3cr3t-token", "X-Api-Key": "k3y-s3cr3t"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["predictions"][0]["comparables"]  # asked for, answered, and not logged:
    out = capsys.readouterr().out
    lines = logged(out)
    assert len(lines) > 3
    assert all("comparables" not in line["outputs"] for line in lines)
    assert "s3cr3t" not in out
    assert "parameters" not in out
    assert all("warnings" not in line for line in lines)
    first, *rest = lines
    summary = {(w["field"], w["code"]): w["count"] for w in first["warning_summary"]}
    assert summary == {(w["field"], w["code"]): w["count"] for w in body["warning_summary"]}
    assert all("warning_summary" not in line for line in rest)
    assert len({line["request_id"] for line in lines}) == 1
    read: list[Any] = []
    for text in out.splitlines():
        parsed = parse_log_line(text)
        if isinstance(parsed, PredictionBatchLine):
            read += parsed.rows()
    assert [r.features for r in read] == rows
    assert [r.index for r in read] == list(range(150))
    assert [r.output["price"] for r in read] == [p["price"] for p in body["predictions"]]


def test_analyze_logs_its_valuation_as_predict_logs_one_instance(
    serving_env: pytest.MonkeyPatch, ames_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions_framework import create_app

    from estate.contract.predlog import PredictionLogLine, parse_log_line

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_LOG_PROJECT", "estate-prod")
    analyze = create_app(target="analyze", source=str(REPO / "main.py")).test_client()
    example = json.loads((REPO / "examples" / "analyze_ames.json").read_text())
    house = {k: v for k, v in example["property"].items() if k != "Alley"}
    capsys.readouterr()
    answer = analyze.post("/", json={**example, "property": house}, headers=TRACE)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    valuation = answer.get_json()["valuation"]
    out = capsys.readouterr().out
    (line,) = logged(out)
    assert {k: line.get(k) for k in CLOUD_LOGGING} == CLOUD_LOGGING
    assert line["features"] == house
    assert line["output"] == {"price": valuation["price"], "interval": valuation["interval"]}
    assert line["warnings"] == [w["code"] for w in valuation["warnings"]]
    assert "terms" not in out
    assert "deal" not in line
    assert isinstance(parse_log_line(out.splitlines()[-1]), PredictionLogLine)
    assert analyze.post("/", json={"property": {"area": "big"}}).status_code == 400
    assert logged(capsys.readouterr().out) == []


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
    from estate.contract.predlog import (
        LoggedModel,
        PredictionBatchLine,
        PredictionLogLine,
        parse_log_line,
    )
    from estate.serving.predlog import Logged, batch_lines, prediction_lines

    rows: list[dict[str, Any]] = [
        HOUSE,
        {"area": 1e16, "Neighborhood": "Caf\u00e9", "Lot.Area": None},
    ]
    predictions = [
        {"price": 1.5e5, "interval": {"lower": 1.0, "upper": 2.5, "level": 0.9}},
        {"price": 0.1, "warnings": [{"code": "imputed", "field": "x", "message": "m"}]},
    ]
    logged = Logged(model={"name": "ames", "version": "v1"}, predictions=predictions)
    model = LoggedModel(name="ames", version="v1")
    for i, line in enumerate(prediction_lines(rows, logged, 12.3456, trace)):
        parsed = json.loads(line)
        want = PredictionLogLine(
            message=parsed["message"],
            event="prediction",
            model=model,
            features=rows[i],
            output={k: v for k, v in predictions[i].items() if k != "warnings"},
            warnings=[w["code"] for w in predictions[i].get("warnings", [])],
            latency_ms=12.346,
            request_id=parsed["request_id"],
            index=i,
            batch_size=2,
            **trace,
        )
        assert list(parsed) == list(json.loads(want.to_json()))  # same fields, same order
        assert parsed == json.loads(want.to_json())
        assert parse_log_line(line) == want
    predictions[0]["warnings"] = []
    for form in ("instances", "inputs"):
        sent = {"instances": rows} if form == "instances" else {"inputs": as_columns(rows)}
        logged = Logged(model={"name": "ames", "version": "v1"}, predictions=predictions, **sent)
        (line,) = batch_lines(logged, 12.3456, trace)
        parsed = json.loads(line)
        batch = PredictionBatchLine(
            message=parsed["message"],
            event="prediction",
            kind="batch",
            model=model,
            outputs={"price": [1.5e5, 0.1], "interval": [predictions[0]["interval"], None]},
            warnings=[[], ["imputed"]],
            latency_ms=12.346,
            request_id=parsed["request_id"],
            count=2,
            batch_size=2,
            **sent,
            **trace,
        )
        assert list(parsed) == list(json.loads(batch.to_json()))
        assert parsed == json.loads(batch.to_json())
        assert parse_log_line(line) == batch


def wide(n: int, width: int, text: str = "x") -> list[dict[str, Any]]:
    """`n` rows of `width` string fields of `text` and one number each."""
    return [{"n": float(i), **{f"f{j}": text for j in range(width)}} for i in range(n)]


def read_back(lines: list[bytes]) -> list[Any]:
    from estate.contract.predlog import PredictionBatchLine, parse_log_line

    rows: list[Any] = []
    for line in lines:
        parsed = parse_log_line(line)
        assert isinstance(parsed, PredictionBatchLine), line[:200]
        rows += parsed.rows()
    return rows


@pytest.mark.parametrize("form", ["instances", "inputs"])
def test_chunks_are_sized_by_bytes_and_every_row_reads_back_in_order(
    monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """Wider rows make more, not longer, lines; rows bigger than the first ones measured
    split their chunk; no line is longer than MAX_LINE_BYTES (patched small here)."""
    import estate.serving.predlog as predlog

    monkeypatch.setattr(predlog, "MAX_LINE_BYTES", 20_000)
    monkeypatch.setattr(predlog, "CHUNK_BYTES", 10_000)
    counts = []
    # narrow rows; wide rows; narrow rows first, then rows 30 times as wide
    for rows in (wide(300, 2), wide(300, 20), wide(40, 2) + wide(300, 60)):
        sent = {"instances": rows} if form == "instances" else {"inputs": as_columns(rows)}
        preds = [{"price": float(i), "interval": None} for i in range(len(rows))]
        logged = predlog.Logged(model={"name": "m", "version": "v"}, predictions=preds, **sent)
        lines = predlog.batch_lines(logged, 1.0, {})
        assert max(len(line) for line in lines) <= 20_000
        read = read_back(lines)
        features = (
            rows if form == "instances" else [{**dict.fromkeys(sent["inputs"]), **r} for r in rows]
        )
        assert [r.features for r in read] == features
        assert [r.output["price"] for r in read] == [p["price"] for p in preds]
        assert [r.index for r in read] == list(range(len(rows)))
        assert not any(r.truncated for r in read)
        counts.append(len(lines))
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize("n", [1, 3])
def test_a_row_too_long_for_one_line_is_logged_truncated(n: int) -> None:
    """A row past Cloud Logging's entry limit (valid categories are at most 200 characters,
    but a control character is 6 bytes of JSON and a wide data set has many) is logged with
    its strings cut, or failing that without features, and a flag; its output whole."""
    from estate.contract.predlog import MAX_LINE_BYTES, parse_log_line
    from estate.serving.predlog import TRUNCATED_CHARS, Logged, request_lines

    control = "\x00" * 200
    huge = wide(1, 200, control)[0]  # 200 x 1,200 bytes: one row of 240 KB
    numbers = {f"number_{j:05d}": 1234.5678 + j for j in range(12_000)}  # too many even cut
    rows = [huge, numbers, {"n": 1.0}][:n] if n > 1 else [huge]
    preds = [{"price": 100.0 + i} for i in range(len(rows))]
    lines = request_lines(Logged({"name": "m", "version": "v"}, preds, instances=rows), 1.0, {})
    assert all(len(line) <= MAX_LINE_BYTES for line in lines)
    read = read_back(lines) if n > 1 else [parse_log_line(lines[0])]
    assert len(read) == n
    first = read[0]
    assert first is not None
    assert first.truncated
    assert first.features == {
        k: v[:TRUNCATED_CHARS] if isinstance(v, str) else v for k, v in huge.items()
    }
    assert first.output == {"price": 100.0}
    if n > 1:
        assert read[1].truncated
        assert read[1].features == {}
        assert not read[2].truncated
        assert read[2].features == {"n": 1.0}
        assert [r.output["price"] for r in read] == [100.0, 101.0, 102.0]
