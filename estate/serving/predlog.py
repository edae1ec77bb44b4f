"""Prediction logging: one structured JSON line per predicted instance, on stdout.

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
import time
import uuid
from collections.abc import Callable
from typing import Any

import flask

from estate.contract.predlog import (
    EVENT,
    SAMPLED_FIELD,
    SPAN_FIELD,
    TRACE_FIELD,
    LoggedModel,
    PredictionLogLine,
)
from estate.serving.settings import ServingSettings

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


def prediction_lines(
    instances: list[Any], answer: dict[str, Any], latency_ms: float, trace: dict[str, Any]
) -> list[str]:
    """The log lines of one answered request, one `PredictionLogLine` per instance."""
    model = LoggedModel(name=answer["model"]["name"], version=answer["model"]["version"])
    request_id = uuid.uuid4().hex[:16]
    lines = []
    for i, (features, pred) in enumerate(zip(instances, answer["predictions"], strict=True)):
        # Comparable sales are training data, not this prediction's output: not logged.
        output = {k: v for k, v in pred.items() if k not in ("warnings", "comparables")}
        first = next(iter(output.items()), ("output", None))
        line = PredictionLogLine(
            severity="INFO",
            message=f"{EVENT} {model.name} {model.version} {first[0]}={first[1]}",
            trace=trace.get(TRACE_FIELD),
            span_id=trace.get(SPAN_FIELD),
            trace_sampled=trace.get(SAMPLED_FIELD),
            event=EVENT,
            model=model,
            features=features,
            output=output,
            warnings=[w["code"] for w in pred.get("warnings", [])],
            latency_ms=round(latency_ms, 3),
            request_id=request_id,
            index=i,
            batch_size=len(instances),
        )
        lines.append(line.to_json())
    return lines


def observe(
    request: flask.Request,
    body: Any,
    answer_for: Callable[[Any], dict[str, Any]],
    settings: ServingSettings,
) -> dict[str, Any]:
    """Answer `body`, then log its predictions (sampled per request by ESTATE_PREDLOG_SAMPLE).

    Only successful answers are logged: a rejected request raises before this logs.
    """
    start = time.perf_counter()
    answer = answer_for(body)
    latency_ms = (time.perf_counter() - start) * 1000
    if settings.predlog_sample > 0 and random.random() < settings.predlog_sample:
        try:
            trace = trace_fields(request.headers, settings.log_project)
            lines = prediction_lines(body["instances"], answer, latency_ms, trace)
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        except Exception:  # a log line must never cost the caller an answer already made
            log.exception("prediction log line skipped")
    return answer
