"""Settings per function, read from the environment once, where its entry point is
resolved (main.py → ``entry_point()`` of each function module), and passed down.

Each function reads only its own: `ServingSettings` (predict, explain), `ChatSettings`
(chat: its limits, deal assumptions and the optional LLM), `AnalyzeSettings` (analyze:
its limits and the same deal assumptions, `DealSettings`), `RetrainSettings` (retrain),
and `GuardSettings` for the body guard every function of this source shares. Fields
common to several live once, in a small base class; every variable keeps its
``ESTATE_`` name and default (README's table; infra/functions.tf sets them). Chat's,
analyze's and retrain's classes live in `estate.serving.function_settings`, so that
predict and explain do not build them at their cold start.

| variable | default | meaning |
|---|---|---|
| ESTATE_ARTIFACTS | ./artifacts | artifact store: local folder or gs://bucket/prefix |
| ESTATE_MODEL_NAME | ames | model to serve (models/<name>/ in the store) |
| ESTATE_MODEL_VERSION | (pointer) | pin a version instead of following serving.json |
| ESTATE_MAX_INSTANCES | 5000 | most instances in one predict request (more → 413) |
| ESTATE_EXPLAIN_MAX_INSTANCES | 200 | most instances in one explain request (more → 413) |
| ESTATE_MAX_REQUEST_BYTES | 8000000 | largest request body (larger → 413) |
| ESTATE_MAX_JSON_VALUES | 500000 | most JSON values in a body, counted unparsed (more → 413) |
| ESTATE_BODY_READ_SECONDS | 10 | longest time a request body may take to arrive (longer → 408) |
| ESTATE_LARGE_BODY_BYTES | 1000000 | a body above this size is a large request … |
| ESTATE_LARGE_BODY_SLOTS | 2 | … and at most this many are answered at once per process |
| ESTATE_MAX_FIELD_ERRORS | 50 | field errors listed in one answer (the rest are counted) |
| ESTATE_ROW_WARNINGS_MAX_INSTANCES | 100 | larger batches: one warning summary, not per row |
| ESTATE_WARNING_ROWS_LISTED | 20 | row indices listed per entry of a warning summary |
| ESTATE_MAX_RESPONSE_BYTES | 8000000 | largest answer body (larger → 413) |
| ESTATE_ORT_THREADS | 1 | onnxruntime intra-op threads per instance |
| ESTATE_ORT_BATCH_THREADS | 1 | batches of 256+ rows run in this many blocks at once (vCPUs) |
| ESTATE_POINTER_REFRESH_SECONDS | 30 | re-read serving.json at most this often (0: every request) |
| ESTATE_RETRY_AFTER_SECONDS | 30 | Retry-After sent with 503 while no model loads |
| ESTATE_CORS_ORIGINS | localhost:8090 | browser origins allowed (JSON list; ["*"]: any) |
| ESTATE_PREDLOG_SAMPLE | 1.0 | share of predict requests logged as JSON lines (0 = off) |
| ESTATE_LOG_PROJECT | (none) | project named in logged trace ids (links logs to Cloud Trace) |
| ESTATE_RETRAIN_PROJECT | (none) | retrain: Google Cloud project of the Vertex AI job |
| ESTATE_RETRAIN_REGION | us-central1 | retrain: Vertex AI region |
| ESTATE_RETRAIN_PREFIX | incoming/ | retrain: only objects under this prefix start a job |
| ESTATE_RETRAIN_CONFIG | configs/ames.toml | retrain: config path in the image |
| ESTATE_RETRAIN_OUTPUT | (ESTATE_ARTIFACTS) | retrain: artifact store the job writes to |
| ESTATE_RETRAIN_STAGING | (none) | retrain: gs:// folder for job outputs |
| ESTATE_RETRAIN_IMAGE | (none) | retrain: training image the job runs (Cloud Build pushes it) |
| ESTATE_RETRAIN_SERVICE_ACCOUNT | (none) | retrain: service account the job runs as |
| ESTATE_RETRAIN_MACHINE_TYPE | n1-standard-4 | retrain: machine type of the job |
| ESTATE_VERTEX_ENDPOINT | (regional host) | Vertex AI API host override (http:// = local stub) |
| ESTATE_CHAT_MAX_MESSAGES | 40 | most messages in one chat request (more → 413) |
| ESTATE_CHAT_MAX_MESSAGE_CHARS | 4000 | longest chat message (longer → 413) |
| ESTATE_CHAT_MAX_REQUEST_BYTES | 200000 | largest chat request body (larger → 413) |
| ESTATE_DEAL_PRICE_TO_RENT | 15 | deal: price / annual rent assumed when no rent is given |
| ESTATE_DEAL_DOWN_PAYMENT | 0.20 | deal: assumed down payment, fraction of the price |
| ESTATE_DEAL_RATE | 0.065 | deal: assumed mortgage rate per year (fraction) |
| ESTATE_DEAL_TERM_YEARS | 30 | deal: assumed mortgage term |
| ESTATE_DEAL_TAX_RATE | 0.015 | deal: property tax per year, fraction of the price |
| ESTATE_DEAL_INSURANCE_RATE | 0.005 | deal: insurance per year, fraction of the price |
| ESTATE_DEAL_VACANCY | 0.05 | deal: assumed vacancy, fraction of the rent |
| ESTATE_DEAL_MAINTENANCE | 0.08 | deal: assumed maintenance, fraction of the rent |
| ESTATE_ANALYZE_MAX_REQUEST_BYTES | 64000 | largest analyze request body (larger → 413) |
| ESTATE_LLM_BASE_URL | (none) | OpenAI-compatible API base URL; unset = local engine only |
| ESTATE_LLM_MODEL | llama-3.3-70b-versatile | chat-completions model name |
| ESTATE_LLM_API_KEY | (none) | API key for local use (in the cloud: the secret below) |
| ESTATE_LLM_API_KEY_SECRET | (none) | key's secret: projects/P/secrets/S/versions/latest |
| ESTATE_SECRET_MANAGER_ENDPOINT | (Google's) | http://host:port = local emulator, no credentials |
| ESTATE_LLM_TIMEOUT_SECONDS | 20 | timeout of one LLM HTTP call (capped by the time left) |
| ESTATE_LLM_DEADLINE_SECONDS | 45 | whole LLM exchange (calls, retries, rounds); then local |
| ESTATE_LLM_MAX_RESPONSE_BYTES | 1000000 | largest LLM reply read (larger → local engine) |
| ESTATE_LLM_MAX_TOOL_CALLS | 8 | most tool calls run per LLM turn (more get an error) |
| ESTATE_LLM_MAX_RETRIES | 1 | retries after a timeout, 429 or 5xx; then the local engine |
| ESTATE_LLM_MAX_TOOL_ROUNDS | 4 | most tool-calling rounds per chat request |

The ``deal:`` rows are the assumptions chat and analyze share (`DealSettings`): both
functions work a deal out on the same defaults.

What each serving limit bounds, and its cost at the limit (measured by
``make bench-memory`` on the Ames blend, figures in bench/README.md). A Cloud Functions
instance has 512 MiB by default, shared by its concurrent requests; the aim is at most
+150 MB peak RSS for any one request.

| limit | bounds | cost at the limit |
|---|---|---|
| MAX_REQUEST_BYTES | bytes read | raw body + its text: 16 MB (5,000 full Ames rows: 7.7 MB) |
| MAX_JSON_VALUES | objects parsed | <= ~250 B a value (unique keys): +124 MB, the worst request |
| MAX_INSTANCES | rows per ONNX call | 5,000 full rows: +78 MB, 0.6 s (2,000-tree blend) |
| EXPLAIN_MAX_INSTANCES | TreeSHAP, answer | 200 rows: +22 MB, 0.4 s, 3.8 MB (blend); 30 s forest |
| BODY_READ_SECONDS | a slow client's hold on a thread | 8 MB in 10 s needs >= 6.4 Mbit/s |
| MAX_FIELD_ERRORS | error list | errors past it are counted, never built |
| ROW_WARNINGS_MAX_INSTANCES | warning objects | one per missing cell (5,000 sparse rows: 38 MB) |
| MAX_RESPONSE_BYTES | answer size (last guard) | text + bytes: 16 MB |
| LARGE_BODY_SLOTS | large requests at once | 8 worst at once: +289 MB (+670 MB unslotted) |

The JSON value count is commas + brackets, counted in C before parsing: an upper bound
on the objects the parser would build (an empty object costs 64 B, a unique key ~250 B),
so 8 MB of ``{},{},...`` (2.7 M objects, +213 MB) is refused before it is parsed.
"""

from __future__ import annotations

import json
import os
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class _Env(BaseModel):
    """Fields read from ``ESTATE_<FIELD>`` (any case) unless passed in; checked by pydantic.

    Read with plain code rather than pydantic-settings, whose import (with python-dotenv
    and its sources) cost ~40 ms of every cold start (~150 ms on a busy machine) for
    what is one dictionary lookup per field: a value is the variable's text, JSON for a
    list, and a bad one is a `pydantic.ValidationError` naming the field, as before.
    """

    # Validators are built when a class is first read, not when this module is imported:
    # a process builds only its own function's settings (predict never builds chat's).
    model_config = ConfigDict(frozen=True, defer_build=True)
    env_prefix: ClassVar[str] = "ESTATE_"

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**self.from_environment(), **values})

    @classmethod
    def from_environment(cls) -> dict[str, Any]:
        """The values the environment sets for this class's fields."""
        env = {key.upper(): value for key, value in os.environ.items()}
        found: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            raw = env.get(f"{cls.env_prefix}{name}".upper())
            if raw is not None:
                found[name] = _decoded(raw, info.annotation)
        return found


def _decoded(raw: str, annotation: Any) -> Any:
    """A list field's variable is JSON (``["https://a.example"]``); others are their text
    (pydantic parses numbers and booleans from it). Broken JSON is passed on as text, so
    pydantic's error names the field."""
    kinds = {typing.get_origin(a) or a for a in (typing.get_args(annotation) or (annotation,))}
    if typing.get_origin(annotation) is list or list in kinds:
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


class StoreSettings(_Env):
    """Where the bundles are (the store every function reads or has written to)."""

    artifacts: str = Field("./artifacts", description="Artifact store URI.")


class ModelSettings(StoreSettings):
    """Which model a model-backed function serves, and how it follows the pointer."""

    model_name: str = Field("ames", description="Model name to serve.")
    model_version: str | None = Field(None, description="Pinned version; default: the pointer's.")
    ort_threads: int = Field(1, ge=1, le=64)
    ort_batch_threads: int = Field(
        1, ge=1, le=64, description="Row blocks of a large batch run at once (vCPUs)."
    )
    pointer_refresh_seconds: float = Field(
        30.0, ge=0.0, description="Re-read the serving pointer at most this often."
    )
    retry_after_seconds: int = Field(30, ge=1)


class _BodyDeadline(_Env):
    body_read_seconds: float = Field(10.0, gt=0)


class _ModelBody(_Env):
    max_request_bytes: int = Field(8_000_000, ge=1024)


class _ChatBody(_Env):
    chat_max_request_bytes: int = Field(200_000, ge=1024)


class HttpSettings(_BodyDeadline):
    """What one HTTP request and its answer may cost (see the table above), and CORS."""

    max_json_values: int = Field(500_000, ge=16)
    large_body_bytes: int = Field(1_000_000, ge=0)
    large_body_slots: int = Field(2, ge=1)
    max_field_errors: int = Field(50, ge=1)
    max_response_bytes: int = Field(8_000_000, ge=1024)
    cors_origins: list[str] = Field(
        ["http://localhost:8090", "http://127.0.0.1:8090"],
        description="Origins whose browser pages may call the functions (CORS); '*' for any.",
    )


class _AnalyzeBody(_Env):
    analyze_max_request_bytes: int = Field(64_000, ge=1024)


class GuardSettings(_BodyDeadline, _ModelBody, _ChatBody, _AnalyzeBody):
    """The body guard's bounds: the largest body any function of this source accepts."""

    @property
    def largest_body(self) -> int:
        return max(
            self.max_request_bytes, self.chat_max_request_bytes, self.analyze_max_request_bytes
        )


class EndpointSettings(ModelSettings, HttpSettings):
    """What every model-backed HTTP function shares: the model it serves (the process's
    model holder is built from it) and what one request may cost."""


class PredLogSettings(_Env):
    """Prediction logging (estate/serving/predlog.py), for predict and analyze."""

    predlog_sample: float = Field(1.0, ge=0.0, le=1.0, description="Share of requests logged.")
    log_project: str | None = Field(None, description="Project of logged trace ids.")


class ServingSettings(EndpointSettings, _ModelBody, PredLogSettings):
    """predict and explain."""

    max_instances: int = Field(5000, ge=1)
    explain_max_instances: int = Field(200, ge=1)
    comparables_max_instances: int = Field(
        500, ge=1, description="Most instances of a request that asks for comparables."
    )
    row_warnings_max_instances: int = Field(100, ge=0)
    warning_rows_listed: int = Field(20, ge=1)
