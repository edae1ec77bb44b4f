"""Prediction logging: structured JSON lines on stdout, one per instance or per batch chunk.

Cloud Functions forward stdout to Cloud Logging, which reads ``severity``, ``message``
and ``logging.googleapis.com/trace`` (+ ``spanId``, ``trace_sampled``) from a JSON line
and keeps the rest as ``jsonPayload``. ``estate monitor`` reads these lines back (from a
log export or a local file) to measure drift, so each line carries the raw features as
sent, the output, the model name and version, and the request's latency. The line's
fields are `estate.contract.predlog.PredictionLogLine`, shared with the reader.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask
from pydantic_core import to_json

from estate.contract.predlog_fields import (
    EVENT,
    MAX_LINE_BYTES,
    SAMPLED_FIELD,
    SPAN_FIELD,
    TRACE_FIELD,
)
from estate.serving.settings import PredLogSettings

log = logging.getLogger("estate_advisor.functions")

#: Longest trace header read: both formats fit in 80 characters; longer ones are ignored.
MAX_TRACE_HEADER = 128
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _header(headers: Any, name: str) -> str:
    value = headers.get(name) or ""
    return value.strip() if isinstance(value, str) and len(value) <= MAX_TRACE_HEADER else ""


def trace_fields(headers: Any, project: str | None) -> dict[str, Any]:
    """Cloud Logging's trace fields from ``traceparent`` or ``X-Cloud-Trace-Context``.

    Header values are the caller's: any length, any characters. Only well-formed ones
    of at most `MAX_TRACE_HEADER` characters are used (a span id must fit in 64 bits),
    and anything else is ignored rather than failing an answered request.
    """
    trace = span = None
    sampled: bool | None = None
    match = _TRACEPARENT.match(_header(headers, "traceparent").lower())
    if match:
        trace, span = match.group(1), match.group(2)
        sampled = int(match.group(3), 16) & 1 == 1
    else:
        match = _CLOUD_TRACE.match(_header(headers, "X-Cloud-Trace-Context"))
        if match:
            trace = match.group(1).lower()
            span_id = int(match.group(2)) if match.group(2) else None
            span = f"{span_id:016x}" if span_id is not None and 0 < span_id < 2**64 else None
            sampled = match.group(3) == "1" if match.group(3) else None
    if trace is None:
        return {}
    fields: dict[str, Any] = {
        TRACE_FIELD: f"projects/{project}/traces/{trace}" if project else trace
    }
    if span:
        fields[SPAN_FIELD] = span
    if sampled is not None:
        fields[SAMPLED_FIELD] = sampled
    return fields


@dataclass(frozen=True)
class Logged:
    """What one answered request logs: who answered, each instance's prediction (its
    ``warnings`` reduced to codes, ``comparables`` left out), and its features as sent, as
    ``instances`` (rows) or ``inputs`` (columns)."""

    model: dict[str, Any]
    predictions: list[dict[str, Any]]
    instances: list[Any] | None = None
    inputs: dict[str, list[Any]] | None = None
    warning_summary: list[dict[str, Any]] | None = None


def predict_logged(body: dict[str, Any], answer: dict[str, Any]) -> Logged:
    """A predict request and its answer, as logged: the body's ``instances`` or columnar
    ``inputs``, never its ``parameters``."""
    instances = body.get("instances")
    return Logged(
        model=answer["model"],
        predictions=answer["predictions"],
        instances=instances,
        inputs=body["inputs"] if instances is None else None,
        warning_summary=answer.get("warning_summary"),
    )


#: A line's target size: a chunk of a batch holds about this many bytes, so the rows of a
#: chunk can be larger than the first rows measured and still stay under MAX_LINE_BYTES.
CHUNK_BYTES = MAX_LINE_BYTES // 2
#: Rows serialized to measure a batch's bytes per row.
SAMPLE_ROWS = 16
#: A truncated row keeps this many characters of each string (numbers stay whole).
TRUNCATED_CHARS = 32
_NOT_OUTPUT = ("warnings", "comparables")


def request_lines(logged: Logged, latency_ms: float, trace: dict[str, Any]) -> list[bytes]:
    """The log lines of one answered request: one `PredictionLogLine` for a single
    instance, `PredictionBatchLine` chunks for more (`batch_lines`)."""
    if len(logged.predictions) == 1:
        rows = logged.instances or [{k: v[0] for k, v in (logged.inputs or {}).items()}]
        return prediction_lines(rows, logged, latency_ms, trace)
    return batch_lines(logged, latency_ms, trace)


def _head(
    logged: Logged, trace: dict[str, Any], kind: str | None = None
) -> tuple[dict[str, Any], str]:
    """The fields every line of a request starts with, and its message's prefix (the
    model as `LoggedModel` holds it, without building that model on the request path)."""
    head: dict[str, Any] = {"severity": "INFO", "message": ""}
    for name in (TRACE_FIELD, SPAN_FIELD, SAMPLED_FIELD):
        if trace.get(name) is not None:
            head[name] = trace[name]
    head["event"] = EVENT
    model = {"name": str(logged.model["name"]), "version": str(logged.model["version"])}
    head["model"] = model
    if kind is not None:
        head["kind"] = kind
    return head, f"{EVENT} {model['name']} {model['version']}"


def prediction_lines(
    instances: list[Any], logged: Logged, latency_ms: float, trace: dict[str, Any]
) -> list[bytes]:
    """One `PredictionLogLine` per instance (the format of a one-instance request).

    Plain dicts in `PredictionLogLine`'s field order and names (aliases, no null trace
    fields), dumped by pydantic's own serializer (`pydantic_core.to_json`, as the
    model's ``to_json`` does) without building and validating a model per line: ~18 µs
    a line against ~45 (the stdlib encoder: ~75). `parse_log_line` reads every line back
    as the model (test_predlog.py). A line longer than `MAX_LINE_BYTES` is written again
    with its row truncated (`_truncated`).
    """
    head, prefix = _head(logged, trace)
    tail = {
        "latency_ms": round(latency_ms, 3),
        "request_id": uuid.uuid4().hex[:16],
        "index": 0,
        "batch_size": len(instances),
    }
    lines = []
    for i, (features, pred) in enumerate(zip(instances, logged.predictions, strict=True)):
        # Comparable sales are training data, not this prediction's output: not logged.
        output = {k: v for k, v in pred.items() if k not in _NOT_OUTPUT}
        first = next(iter(output.items()), ("output", None))
        head["message"] = f"{prefix} {first[0]}={first[1]}"
        tail["index"] = i
        line = {
            **head,
            "features": features,
            "output": output,
            "warnings": [w["code"] for w in pred.get("warnings", [])],
            **tail,
        }
        lines.append(_within_limit(line, "features", {}))
    return lines


def _within_limit(line: dict[str, Any], key: str, empty: Any) -> bytes:
    """`line` as JSON; one longer than `MAX_LINE_BYTES` written again with the strings of
    its `key` (the features) cut and ``truncated`` set, and if even that is too long,
    with `empty` for them."""
    text = to_json(line)
    if len(text) <= MAX_LINE_BYTES:
        return text
    line[key] = _truncated(line[key])
    line["truncated"] = True
    text = to_json(line)
    if len(text) > MAX_LINE_BYTES:
        line[key] = empty
        text = to_json(line)
    return text


def _truncated(value: Any) -> Any:
    """`value` with every string cut to `TRUNCATED_CHARS` (numbers, nulls, keys kept)."""
    if isinstance(value, str):
        return value[:TRUNCATED_CHARS]
    if isinstance(value, dict):
        return {k: _truncated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncated(v) for v in value]
    return value


def batch_lines(logged: Logged, latency_ms: float, trace: dict[str, Any]) -> list[bytes]:
    """A batch request as a few `PredictionBatchLine` lines of about `CHUNK_BYTES` each.

    The request's features are logged as sent, in its own form (a slice of the rows or of
    every column), its outputs as one array per field, and each line is one
    ``to_json`` call: 1,000 Ames rows log in ~3 ms as columns (~6 as rows: to_json's cost
    per key) against 25-30 ms for one line per row. Chunks
    are sized by bytes, measured on the first `SAMPLE_ROWS` rows, not by a row count: a
    wide data set's rows are bigger. A chunk that still comes out longer than
    `MAX_LINE_BYTES` is split in two, and a single row that alone is too long is logged
    truncated (``truncated``), so no line can exceed Cloud Logging's entry limit.
    """
    preds = logged.predictions
    n = len(preds)
    if n == 0:
        return []
    head, prefix = _head(logged, trace, kind="batch")
    names = [k for k in preds[0] if k not in _NOT_OUTPUT]
    outputs = {k: [p.get(k) for p in preds] for k in names}
    warnings = (
        [[w["code"] for w in p.get("warnings", [])] for p in preds]
        if "warnings" in preds[0]
        else None
    )
    summary = (
        [{k: v for k, v in w.items() if k != "message"} for w in logged.warning_summary]
        if logged.warning_summary
        else None
    )
    tail = {"latency_ms": round(latency_ms, 3), "request_id": uuid.uuid4().hex[:16]}

    key = "instances" if logged.instances is not None else "inputs"

    def line(a: int, b: int) -> dict[str, Any]:
        body: dict[str, Any] = dict(head)
        body["message"] = f"{prefix} rows {a}-{b - 1} of {n}"
        if logged.instances is not None:
            body[key] = logged.instances[a:b]
        else:
            body[key] = {k: v[a:b] for k, v in (logged.inputs or {}).items()}
        body["outputs"] = {k: v[a:b] for k, v in outputs.items()}
        if warnings is not None:
            body["warnings"] = warnings[a:b]
        if summary and a == 0:
            body["warning_summary"] = summary
        body.update(tail)
        body["index"], body["count"], body["batch_size"] = a, b - a, n
        return body

    sample = min(n, SAMPLE_ROWS)
    measured = to_json(line(0, sample))
    if sample == n and len(measured) <= CHUNK_BYTES:  # a small batch: that is its line
        return [measured]
    step = max(1, int(CHUNK_BYTES * sample / len(measured)))
    lines: list[bytes] = []
    todo = [(a, min(a + step, n)) for a in range(0, n, step)]
    todo.reverse()
    while todo:
        a, b = todo.pop()
        body = line(a, b)
        text = to_json(body)
        if len(text) <= MAX_LINE_BYTES:
            lines.append(text)
        elif b - a == 1:  # one row too long alone: its features cut (`_within_limit`)
            lines.append(_within_limit(body, key, [{}] if key == "instances" else {}))
        else:  # bigger rows than the sample: halve the chunk, in order
            middle = (a + b) // 2
            todo += [(middle, b), (a, middle)]
    return lines


_write_lock = threading.Lock()


def write(lines: list[bytes]) -> None:
    """`lines` on stdout, whole: as bytes (no decode and re-encode of a batch's MBs), and
    under a lock, so two threads' requests cannot interleave inside a line."""
    with _write_lock:
        sys.stdout.flush()  # what was written as text before goes first
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a text-only stream
            sys.stdout.write("".join(f"{line.decode()}\n" for line in lines))
        else:
            out.write(b"\n".join([*lines, b""]))
        (out or sys.stdout).flush()


def observe(
    request: flask.Request,
    body: Any,
    answer_for: Callable[[Any], dict[str, Any]],
    settings: PredLogSettings,
    logged: Callable[[Any, dict[str, Any]], Logged] = predict_logged,
) -> dict[str, Any]:
    """Answer `body`, then log its predictions (sampled per request by ESTATE_PREDLOG_SAMPLE):
    `logged` picks them, and the features as sent, out of the body and the answer.

    Only successful answers are logged: a rejected request raises before this logs.
    """
    start = time.perf_counter()
    answer = answer_for(body)
    latency_ms = (time.perf_counter() - start) * 1000
    if settings.predlog_sample > 0 and random.random() < settings.predlog_sample:
        try:
            trace = trace_fields(request.headers, settings.log_project)
            lines = request_lines(logged(body, answer), latency_ms, trace)
            write(lines)
        except Exception:  # a log line must never cost the caller an answer already made
            log.exception("prediction log line skipped")
    return answer
