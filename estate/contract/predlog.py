"""The prediction log lines, defined once: a JSON object per instance or per chunk of a batch.

A one-instance request is logged as one `PredictionLogLine`; a request of several instances
as one or more `PredictionBatchLine` lines, each holding a chunk of its rows (the features as
sent, in the request's own form) and their outputs as arrays, so a 1,000-row batch costs
a few lines, not 1,000. Both carry ``event: "prediction"``; `PredictionBatchLine.rows`
turns a batch line back into the `PredictionLogLine` of each of its rows, which is what
``estate monitor`` reads, whichever writer (old or new) wrote the logs.

The predict and analyze functions write them to stdout (estate/serving/predlog.py); Cloud
Logging reads ``severity``, ``message`` and the ``logging.googleapis.com/*`` trace fields
from them and keeps the rest as ``jsonPayload``; the log sink picks these lines by
``jsonPayload.event="prediction"`` (infra/variables.tf, ``prediction_log_filter``) and
``estate monitor`` (estate/ops/monitor.py) parses them back, bare or inside a sink's
``jsonPayload``.

The bundle's compatibility rule holds here too (estate/contract/bundle.py): readers ignore
fields they do not know, writers add only optional fields whose absence means the old
behaviour. Only ``event``, ``model``, ``features`` and ``output`` are required to read a
line (``event``, ``kind``, ``model``, one of ``instances``/``inputs``, ``outputs`` and ``count``
for a batch line), since a sink moves the severity and trace fields out of ``jsonPayload``.
A batch line has no ``features``/``output``, so a reader older than batch lines skips it
rather than misreading a chunk as one row.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from estate.contract.bundle import ContractModel
from estate.contract.predlog_fields import (
    EVENT,
    MAX_LINE_BYTES,
    SAMPLED_FIELD,
    SPAN_FIELD,
    TRACE_FIELD,
)

__all__ = [  # the line's constants are defined in predlog_fields, read here too
    "EVENT",
    "MAX_LINE_BYTES",
    "SAMPLED_FIELD",
    "SPAN_FIELD",
    "TRACE_FIELD",
    "LoggedModel",
    "PredictionBatchLine",
    "PredictionLogLine",
    "SinkEntry",
    "parse_log_line",
]


#: The lines' models are built on first use (by a reader), not when the writer imports
#: this module for its constants: predict's cold start does not pay for them.
_DEFERRED = ConfigDict(defer_build=True)


class LoggedModel(ContractModel):
    """The model that answered: the ``model`` object of the response."""

    model_config = _DEFERRED

    name: str
    version: str


class _LoggedLine(ContractModel):
    """What every prediction log line carries: the fields Cloud Logging reads (severity,
    message, trace) and who answered."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    severity: str = "INFO"
    message: str = Field("", description="One human line: event, model, first output value.")
    trace: str | None = Field(None, alias=TRACE_FIELD)
    span_id: str | None = Field(None, alias=SPAN_FIELD)
    trace_sampled: bool | None = Field(None, alias=SAMPLED_FIELD)
    event: Literal["prediction"]
    model: LoggedModel


class PredictionLogLine(_LoggedLine):
    """One predicted instance: the raw features as sent, the answer, who answered, how fast."""

    features: dict[str, Any] = Field(description="The instance as sent: missing stays missing.")
    output: dict[str, Any] = Field(description="The prediction without its warnings.")
    warnings: list[str] = Field(default_factory=list, description="Warning codes of the row.")
    latency_ms: float | None = Field(None, description="Time to answer the whole request.")
    request_id: str = Field("", description="Shared by the lines of one request.")
    index: int = Field(0, description="The instance's position in its request.")
    batch_size: int = Field(1, description="Instances in the request.")
    truncated: bool | None = Field(
        None,
        description="True: the row alone was longer than MAX_LINE_BYTES: its long strings were "
        "cut (or, failing that, its features left out); the output is whole.",
    )

    def to_json(self) -> str:
        """The line as written: compact, Cloud Logging's names, no empty trace fields."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class PredictionBatchLine(_LoggedLine):
    """A chunk of a batch request: ``count`` rows from position ``index``, features as sent
    (``instances``: a list of rows; ``inputs``: the columns' slices), outputs as arrays."""

    kind: Literal["batch"]
    instances: list[dict[str, Any]] | None = Field(
        None, description="The chunk's rows as sent (an instances body): missing stays missing."
    )
    inputs: dict[str, list[Any]] | None = Field(
        None, description="The chunk's slice of each column as sent (a columnar body)."
    )
    outputs: dict[str, list[Any]] = Field(
        description="Each output field of the predictions (e.g. price, interval): one array "
        "entry per row, without warnings or comparables."
    )
    warnings: list[list[str]] | None = Field(
        None,
        description="Warning codes of each row, when the answer had per-row warnings.",
    )
    warning_summary: list[dict[str, Any]] | None = Field(
        None,
        description="The answer's warning_summary (field, code, count, first rows) of a "
        "batch answered with one: on the request's first line only.",
    )
    latency_ms: float | None = Field(None, description="Time to answer the whole request.")
    request_id: str = Field("", description="Shared by the lines of one request.")
    index: int = Field(0, description="Position in the request of the chunk's first row.")
    count: int = Field(ge=1, description="Rows in this line.")
    batch_size: int = Field(1, description="Instances in the request.")
    truncated: bool | None = Field(
        None, description="True: the one row of this line was cut to fit (`PredictionLogLine`)."
    )

    @model_validator(mode="after")
    def _arrays_match_count(self) -> Self:
        """Every array holds `count` entries and the rows come in exactly one form: a line
        that does not is not read as a batch at all (skipped by `parse_log_line`)."""
        if (self.instances is None) == (self.inputs is None):
            raise ValueError("a batch line holds 'instances' or 'inputs', exactly one")
        arrays = [self.instances, self.warnings, *self.outputs.values()]
        arrays += list((self.inputs or {}).values())
        if any(a is not None and len(a) != self.count for a in arrays):
            raise ValueError(f"every array of a batch line holds count={self.count} entries")
        return self

    def rows(self) -> list[PredictionLogLine]:
        """Each row as the `PredictionLogLine` the one-line-per-row writer made of it (a
        column's null kept as a null, as that writer did). Not validated again: this line
        was, and its arrays' lengths were checked."""
        if self.instances is not None:
            features = self.instances
        elif self.inputs:
            names = list(self.inputs)
            columns = zip(*self.inputs.values(), strict=True)
            features = [dict(zip(names, cells, strict=True)) for cells in columns]
        else:  # a truncated row whose features were left out
            features = [{} for _ in range(self.count)]
        names = list(self.outputs)
        outputs = [
            dict(zip(names, c, strict=True)) for c in zip(*self.outputs.values(), strict=True)
        ]
        if not outputs:
            outputs = [{} for _ in range(self.count)]
        warnings = self.warnings or [[] for _ in range(self.count)]
        return [
            PredictionLogLine.model_construct(
                severity=self.severity,
                message=self.message,
                trace=self.trace,
                span_id=self.span_id,
                trace_sampled=self.trace_sampled,
                event=self.event,
                model=self.model,
                features=f,
                output=o,
                warnings=w,
                latency_ms=self.latency_ms,
                request_id=self.request_id,
                index=self.index + i,
                batch_size=self.batch_size,
                truncated=self.truncated,
            )
            for i, (f, o, w) in enumerate(zip(features, outputs, warnings, strict=True))
        ]

    def to_json(self) -> str:
        """The line as written: compact, Cloud Logging's names, no empty optional fields."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class SinkEntry(ContractModel):
    """A Cloud Logging entry as a log sink exports it: our line is its ``jsonPayload``."""

    model_config = _DEFERRED

    jsonPayload: PredictionLogLine | PredictionBatchLine  # noqa: N815 (Cloud Logging's name)


@cache
def _any_line() -> TypeAdapter[PredictionLogLine | PredictionBatchLine | SinkEntry]:
    return TypeAdapter(PredictionLogLine | PredictionBatchLine | SinkEntry)


def parse_log_line(text: str | bytes) -> PredictionLogLine | PredictionBatchLine | None:
    """The prediction(s) in one log line, bare or sink-wrapped: a `PredictionLogLine`, or a
    `PredictionBatchLine` (`.rows()` gives its rows); None for any other line (server
    logs, errors, other events, malformed JSON, a batch line whose arrays disagree)."""
    try:
        parsed = _any_line().validate_json(text)
    except ValidationError:
        return None
    return parsed.jsonPayload if isinstance(parsed, SinkEntry) else parsed
