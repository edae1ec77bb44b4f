"""`PredictionLogLine`: the one definition of the prediction log line, written by predict
and read back by `estate monitor`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from estate.contract.predlog import (
    EVENT,
    LoggedModel,
    PredictionBatchLine,
    PredictionLogLine,
    parse_log_line,
)

#: The wire format the predict function wrote before the line had a model (and that Cloud
#: Logging, the log sink's filter and exported logs rely on): keys and their order.
WIRE_KEYS = [
    "severity",
    "message",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "event",
    "model",
    "features",
    "output",
    "warnings",
    "latency_ms",
    "request_id",
    "index",
    "batch_size",
]


def a_line(**changes: Any) -> PredictionLogLine:
    line = PredictionLogLine(
        severity="INFO",
        message="prediction ames v1 price=201000.5",
        trace="projects/p/traces/105445aa7843bc8bf206b12000100000",
        span_id="0000000000000001",
        trace_sampled=True,
        event=EVENT,
        model=LoggedModel(name="ames", version="v1"),
        features={"area": 1800, "Neighborhood": "CollgCr", "Alley": None, "Lot.Area": 8450.5},
        output={"price": 201000.5, "interval": {"lower": 1.0, "upper": 2.0, "level": 0.9}},
        warnings=["imputed"],
        latency_ms=3.25,
        request_id="a1b2c3d4e5f6a7b8",
        index=0,
        batch_size=2,
    )
    return line.model_copy(update=changes)


def test_the_line_keeps_cloud_loggings_names_and_the_old_key_order() -> None:
    written = json.loads(a_line().to_json())
    assert list(written) == WIRE_KEYS
    assert written["features"]["Alley"] is None  # as sent: a null stays a null
    assert written["model"] == {"name": "ames", "version": "v1"}
    assert "\n" not in a_line().to_json()  # one line per prediction


def test_absent_trace_fields_are_left_out_not_null() -> None:
    written = json.loads(a_line(trace=None, span_id=None, trace_sampled=None).to_json())
    assert list(written) == [k for k in WIRE_KEYS if not k.startswith("logging.")]


def test_a_written_line_reads_back_bare_and_inside_a_sinks_json_payload() -> None:
    line = a_line()
    assert parse_log_line(line.to_json()) == line
    exported = {
        "insertId": "x1",
        "severity": "INFO",
        "trace": line.trace,
        "jsonPayload": {k: v for k, v in json.loads(line.to_json()).items() if "/" not in k},
        "resource": {"type": "cloud_run_revision"},
    }
    read = parse_log_line(json.dumps(exported))
    assert read is not None
    assert read.model_dump(exclude={"trace", "span_id", "trace_sampled"}) == line.model_dump(
        exclude={"trace", "span_id", "trace_sampled"}
    )


def test_unknown_fields_of_a_newer_writer_are_ignored() -> None:
    raw = json.loads(a_line().to_json())
    raw["future"] = {"x": 1}
    raw["model"]["future_stage"] = "canary"
    assert parse_log_line(json.dumps(raw)) == a_line()


def test_a_minimal_line_reads_with_defaults() -> None:
    """What a sink keeps of an older or hand-written line: the four required fields."""
    minimal = {
        "event": "prediction",
        "model": {"name": "ames", "version": "v1"},
        "features": {"area": 1},
        "output": {"price": 1.0},
    }
    read = parse_log_line(json.dumps(minimal))
    assert read is not None
    assert (read.warnings, read.latency_ms, read.batch_size) == ([], None, 1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "server started",
        "[1, 2, 3]",
        '{"severity": "ERROR", "message": "Traceback …"}',
        '{"event": "prediction"',  # cut off
        '{"event": "startup", "model": {"name": "a", "version": "v"}, "features": {}, '
        '"output": {}}',
        '{"event": "prediction", "model": {"name": "ames"}, "features": {}, "output": {}}',
        '{"event": "prediction", "model": "ames", "features": {}, "output": {}}',
        '{"event": "prediction", "model": {"name": "a", "version": "v"}, "features": [], '
        '"output": {}}',
        '{"jsonPayload": {"event": "other"}}',
        '{"jsonPayload": "prediction"}',
        "prediction ames v1 price=1",
    ],
)
def test_other_lines_are_not_predictions(text: str) -> None:
    assert parse_log_line(text) is None


#: A batch line's keys, in the order the writer puts them (instances or inputs, not both).
BATCH_KEYS = [
    "severity",
    "message",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "event",
    "model",
    "kind",
    "instances",
    "outputs",
    "warnings",
    "latency_ms",
    "request_id",
    "index",
    "count",
    "batch_size",
]
INTERVALS = [{"lower": 1.0, "upper": 2.0, "level": 0.9}, {"lower": 3.0, "upper": 4.0, "level": 0.9}]


def a_batch(**changes: Any) -> PredictionBatchLine:
    line = PredictionBatchLine(
        message="prediction ames v1 rows 10-11 of 50",
        trace="projects/p/traces/105445aa7843bc8bf206b12000100000",
        span_id="0000000000000001",
        trace_sampled=True,
        event=EVENT,
        kind="batch",
        model=LoggedModel(name="ames", version="v1"),
        instances=[{"area": 1800, "Alley": None}, {"Neighborhood": "CollgCr"}],
        outputs={"price": [201000.5, 99000.0], "interval": INTERVALS},
        warnings=[[], ["imputed"]],
        latency_ms=3.25,
        request_id="a1b2c3d4e5f6a7b8",
        index=10,
        count=2,
        batch_size=50,
    )
    return line.model_copy(update=changes)


def test_a_batch_line_keeps_cloud_loggings_names_and_reads_back_bare_and_sink_wrapped() -> None:
    line = a_batch()
    written = json.loads(line.to_json())
    assert list(written) == BATCH_KEYS
    assert parse_log_line(line.to_json()) == line
    exported = {
        "severity": "INFO",
        "jsonPayload": {k: v for k, v in written.items() if "/" not in k},
    }
    read = parse_log_line(json.dumps(exported))
    assert isinstance(read, PredictionBatchLine)
    assert read.rows()[1].features == {"Neighborhood": "CollgCr"}


@pytest.mark.parametrize("form", ["instances", "inputs"])
def test_a_batch_lines_rows_are_the_per_row_lines_of_the_old_writer(form: str) -> None:
    """The rows of a batch line equal the `PredictionLogLine`s one line per row gave."""
    rows = {
        "instances": {"instances": [{"area": 1800, "Alley": None}, {"Neighborhood": "CollgCr"}]},
        "inputs": {"inputs": {"area": [1800, None], "Neighborhood": [None, "CollgCr"]}},
    }[form]
    features = {
        "instances": [{"area": 1800, "Alley": None}, {"Neighborhood": "CollgCr"}],
        "inputs": [{"area": 1800, "Neighborhood": None}, {"area": None, "Neighborhood": "CollgCr"}],
    }[form]
    batch = a_batch(**{"instances": None, **rows})
    read = parse_log_line(batch.to_json())
    assert isinstance(read, PredictionBatchLine)
    per_row = [
        a_line(
            message=batch.message,
            features=features[i],
            output={"price": batch.outputs["price"][i], "interval": INTERVALS[i]},
            warnings=batch.warnings[i] if batch.warnings else [],
            index=10 + i,
            batch_size=50,
        )
        for i in range(2)
    ]
    assert read.rows() == per_row
    assert [parse_log_line(r.to_json()) for r in read.rows()] == per_row


def test_a_batch_line_without_per_row_warnings_reads_with_none() -> None:
    read = parse_log_line(a_batch(warnings=None).to_json())
    assert isinstance(read, PredictionBatchLine)
    assert [r.warnings for r in read.rows()] == [[], []]


def test_a_reader_of_per_row_lines_only_skips_batch_lines_rather_than_misread_them() -> None:
    """What `estate monitor` did before batch lines: a chunk is not one odd row."""
    from pydantic import TypeAdapter, ValidationError

    old_reader = TypeAdapter(PredictionLogLine)
    with pytest.raises(ValidationError):
        old_reader.validate_json(a_batch().to_json())


@pytest.mark.parametrize(
    "changes",
    [
        {"count": 3},  # arrays of 2
        {"warnings": [[]]},
        {"outputs": {"price": [1.0]}},
        {"inputs": {"area": [1, 2]}},  # both forms
        {"instances": None},  # neither
        {"count": 0, "instances": [], "outputs": {}, "warnings": []},
    ],
)
def test_a_batch_line_whose_arrays_disagree_is_not_a_prediction(changes: dict[str, Any]) -> None:
    raw = json.loads(a_batch().to_json())
    raw.update(changes)
    raw = {k: v for k, v in raw.items() if v is not None}
    assert parse_log_line(json.dumps(raw)) is None
