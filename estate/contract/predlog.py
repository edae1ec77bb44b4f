"""The prediction log line: one JSON object per predicted instance, defined once.

The predict function writes it to stdout (estate/serving/predlog.py); Cloud Logging reads
``severity``, ``message`` and the ``logging.googleapis.com/*`` trace fields from it and keeps
the rest as ``jsonPayload``; the log sink picks these lines by ``jsonPayload.event=
"prediction"`` (infra/variables.tf, ``prediction_log_filter``) and ``estate monitor``
(estate/ops/monitor.py) parses them back, bare or inside a sink's ``jsonPayload``.

The bundle's compatibility rule holds here too (estate/contract/bundle.py): readers ignore
fields they do not know, writers add only optional fields whose absence means the old
behaviour. Only ``event``, ``model``, ``features`` and ``output`` are required to read a
line, since a sink moves the severity and trace fields out of ``jsonPayload``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from estate.contract.bundle import ContractModel

EVENT: Final = "prediction"
TRACE_FIELD: Final = "logging.googleapis.com/trace"
SPAN_FIELD: Final = "logging.googleapis.com/spanId"
SAMPLED_FIELD: Final = "logging.googleapis.com/trace_sampled"


class LoggedModel(ContractModel):
    """The model that answered: the ``model`` object of the response."""

    name: str
    version: str


class PredictionLogLine(ContractModel):
    """One predicted instance: the raw features as sent, the answer, who answered, how fast."""

    model_config = ConfigDict(populate_by_name=True)

    severity: str = "INFO"
    message: str = Field("", description="One human line: event, model, first output value.")
    trace: str | None = Field(None, alias=TRACE_FIELD)
    span_id: str | None = Field(None, alias=SPAN_FIELD)
    trace_sampled: bool | None = Field(None, alias=SAMPLED_FIELD)
    event: Literal["prediction"]
    model: LoggedModel
    features: dict[str, Any] = Field(description="The instance as sent: missing stays missing.")
    output: dict[str, Any] = Field(description="The prediction without its warnings.")
    warnings: list[str] = Field(default_factory=list, description="Warning codes of the row.")
    latency_ms: float | None = Field(None, description="Time to answer the whole request.")
    request_id: str = Field("", description="Shared by the lines of one request.")
    index: int = Field(0, description="The instance's position in its request.")
    batch_size: int = Field(1, description="Instances in the request.")

    def to_json(self) -> str:
        """The line as written: compact, Cloud Logging's names, no empty trace fields."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class SinkEntry(ContractModel):
    """A Cloud Logging entry as a log sink exports it: our line is its ``jsonPayload``."""

    jsonPayload: PredictionLogLine  # noqa: N815 (Cloud Logging's name)


_ANY_LINE: TypeAdapter[PredictionLogLine | SinkEntry] = TypeAdapter(PredictionLogLine | SinkEntry)


def parse_log_line(text: str | bytes) -> PredictionLogLine | None:
    """The prediction in one log line, bare or sink-wrapped; None for any other line
    (server logs, errors, other events, malformed JSON)."""
    try:
        parsed = _ANY_LINE.validate_json(text)
    except ValidationError:
        return None
    return parsed.jsonPayload if isinstance(parsed, SinkEntry) else parsed
