"""BigQuery remote functions on ``predict``: ``{"calls": [[row], ...]}`` → ``{"replies": [...]}``.

BigQuery calls a remote function with a batch of rows in one POST::

    {"requestId": "124ab1c", "caller": "//bigquery.googleapis.com/projects/p/jobs/p:US.j",
     "sessionUser": "user@example.com", "userDefinedContext": {"model_version": "v1"},
     "calls": [[{"area": 1710, "Neighborhood": "CollgCr"}], [null], ...]}

and expects ``{"replies": [...]}`` with one reply per call, in order, or
``{"errorMessage": "..."}``. It retries the batch on HTTP 408, 429, 500, 503 and 504 and
fails the query on any other non-200 status. This module speaks that protocol with the
same validation, packing, ONNX call and answer per row as ``{"instances": [...]}``
(`estate.serving.predict`), so a row gets the same price and interval on both paths.

The one argument is the row: a JSON object of raw features (``TO_JSON(t)`` of a table
row, or ``JSON_OBJECT(...)``), or a STRING holding one (``TO_JSON_STRING(t)``). Keys the
model does not read (an id, the label, other columns) are ignored, like ``estate score``
ignores columns it does not read; a missing feature is imputed and named in the row's
``warnings`` (``{"field", "code": "imputed"}``: predict's note without its message, which
is the same for every row; out-of-range and unknown-category notes keep theirs).

**Invalid rows get their error in their own reply** ``{"error": {"detail", "errors"}}``
and no price, instead of failing the query: BigQuery has no per-row error channel, a
query over 100 million rows should not die after an hour because one row has a typo,
and the error stays visible (``JSON_VALUE(r, '$.error.detail') IS NOT NULL`` finds them)
rather than a silent NULL. Whatever is wrong with the *batch* (not the rows: a body
that is not this protocol's, a function declared with two arguments, more calls than
``ESTATE_MAX_INSTANCES``, a pinned version this function does not serve) fails the query
with a 400 and an ``errorMessage`` saying what to change; a model that cannot load
answers 503 so BigQuery retries.

``userDefinedContext`` (``user_defined_context`` in ``CREATE FUNCTION``) may pin a
served version with ``{"model_version": "<version>"}``; without it the champion or
canary answers, chosen by a stable hash of ``requestId`` (a retried batch lands on the
same side).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from estate.contract.bundle import Manifest
from estate.contract.errors import (
    FieldError,
    InvalidInputError,
    ModelNotFoundError,
    RequestError,
)
from estate.contract.instances import known_fields, require_values, validate_instances
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.outputs import intervals, labels
from estate.runtime.packing import Packed
from estate.runtime.serving_model import ServingModel
from estate.serving.problems import HttpError, problem_for
from estate.serving.settings import ServingSettings
from estate.serving.versions import PIN_HEADER

#: The keys of BigQuery's request body; ``calls`` is the one that must be there.
PROTOCOL_KEYS = frozenset({"requestId", "caller", "sessionUser", "userDefinedContext", "calls"})
#: ``userDefinedContext`` key that pins a served version.
VERSION_KEY = "model_version"
#: Statuses BigQuery retries; any other non-200 fails the query.
RETRIED = frozenset({408, 429, 500, 503, 504})

#: A batch's answers: (manifest, predictions, interval bounds, labels) → predict's JSON
#: object for each row.
Answer = Callable[
    [Manifest, np.ndarray, np.ndarray | None, np.ndarray | None], list[dict[str, Any]]
]
#: The model that answers a batch: (request id, pinned version or None) → model.
Route = Callable[[str | None, str | None], ServingModel]


@dataclass
class RemoteError(HttpError):
    """An error answered as the protocol asks: ``{"errorMessage": ...}`` and a status."""

    content_type: str = "application/json"

    def to_problem(self) -> dict[str, Any]:
        return {"errorMessage": self.detail}


def remote_error(error: RequestError | HttpError) -> RemoteError:
    """`error` in the protocol's shape; its status says whether BigQuery retries it."""
    http = problem_for(error)
    detail = http.detail
    if http.errors:
        detail += " " + "; ".join(f"{e.field}: {e.message}" for e in http.errors[:5])
    return RemoteError(http.status, http.title, detail, http.slug, headers=http.headers)


def is_remote_call(body: Any) -> bool:
    """Whether a JSON body is a BigQuery remote-function request (it has ``calls``)."""
    return isinstance(body, dict) and "calls" in body and "instances" not in body


def _fail(detail: str, status: int = 400) -> RemoteError:
    return RemoteError(status, "Invalid remote function call", detail, "invalid-remote-call")


def _check_envelope(
    body: dict[str, Any], settings: ServingSettings
) -> tuple[list[Any], str | None]:
    """The calls and the pinned version, or a `RemoteError` naming what is wrong."""
    unknown = sorted(k for k in body if k not in PROTOCOL_KEYS)[:5]
    if unknown:
        raise _fail(
            f"Unknown top-level key(s) {unknown}: a BigQuery remote-function body has only "
            f"{sorted(PROTOCOL_KEYS)}."
        )
    calls = body["calls"]
    if not isinstance(calls, list):
        raise _fail(f"'calls' must be a list of argument lists, got {type(calls).__name__}.")
    if len(calls) > settings.max_instances:
        raise _fail(
            f"{len(calls)} calls in one batch; this function takes at most "
            f"{settings.max_instances}. Recreate the function with "
            f"max_batching_rows <= {settings.max_instances} (infra/bigquery/remote_predict.sql).",
            413,
        )
    context = body.get("userDefinedContext")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise _fail("'userDefinedContext' must be an object of string keys and values.")
    pinned = context.get(VERSION_KEY)
    if pinned is not None and (not isinstance(pinned, str) or not pinned):
        raise _fail(f"userDefinedContext.{VERSION_KEY} must be a version string.")
    request_id = body.get("requestId")
    if request_id is not None and not isinstance(request_id, str):
        raise _fail("'requestId' must be a string.")
    for i, call in enumerate(calls):
        if not isinstance(call, list) or len(call) != 1:
            count = len(call) if isinstance(call, list) else "not a list"
            raise _fail(
                f"calls[{i}] has {count} argument(s); this function takes exactly one: the "
                "row as JSON (TO_JSON(t)) or as a JSON string (TO_JSON_STRING(t)). "
                "Recreate the function with one JSON argument."
            )
    return calls, pinned or None


def _row(argument: Any, i: int, known: frozenset[str]) -> dict[str, Any]:
    """Call `i`'s argument as an instance of the features the model reads."""
    if isinstance(argument, str):
        try:  # the body's value budget counted this string's commas and brackets too
            argument = json.loads(argument)
        except RecursionError:
            raise InvalidInputError(f"calls[{i}][0] is JSON nested too deeply.") from None
        except ValueError as exc:
            raise InvalidInputError(
                f"calls[{i}][0] is a string that is not JSON ({exc}); pass TO_JSON_STRING(t) "
                "or TO_JSON(t)."
            ) from None
    if argument is None:
        raise InvalidInputError(
            f"calls[{i}][0] is NULL: the row has no features. Filter NULL rows out, or "
            "pass TO_JSON(t)."
        )
    if not isinstance(argument, dict):
        raise InvalidInputError(
            f"calls[{i}][0] is a JSON {type(argument).__name__}, not an object of "
            "features; pass TO_JSON(t) or JSON_OBJECT('area', area, ...)."
        )
    return {k: v for k, v in argument.items() if k in known}


def _error_reply(error: RequestError, i: int) -> dict[str, Any]:
    """A row's error as its reply: the detail and the bad fields (``calls[i]`` paths)."""
    error.renamed("instances[0]", f"calls[{i}][0]")
    reply: dict[str, Any] = {"error": {"detail": error.detail}}
    if error.errors:
        reply["error"]["errors"] = [e.to_json() for e in error.errors]
    return reply


def remote_answer(
    body: dict[str, Any], route: Route, answer: Answer, settings: ServingSettings
) -> dict[str, Any]:
    """``{"replies": [...]}`` for a remote-function body: one reply per call, in order.

    Valid rows are validated and predicted together (one ONNX call); a batch with
    invalid rows falls back to validating row by row, so each bad row gets its own error.
    """
    calls, pinned = _check_envelope(body, settings)
    try:
        model = route(body.get("requestId"), pinned)
    except ModelNotFoundError as exc:  # 404: BigQuery does not retry it
        exc.detail = exc.detail.replace(PIN_HEADER, f"userDefinedContext.{VERSION_KEY}").replace(
            "drop the header", "drop it from the function's user_defined_context"
        )
        raise remote_error(exc) from None
    known = known_fields(model.adapter)
    replies: list[dict[str, Any] | None] = [None] * len(calls)
    rows: list[dict[str, Any]] = []
    where: list[int] = []
    for i, call in enumerate(calls):
        try:
            rows.append(_row(call[0], i, known))
            where.append(i)
        except InvalidInputError as exc:
            replies[i] = _error_reply(exc, i)
    instances, where = _validated(model, rows, where, replies, settings)
    if instances:
        _predict(model, instances, where, replies, answer)
    return {"replies": replies}


def _validated(
    model: ServingModel,
    rows: list[dict[str, Any]],
    where: list[int],
    replies: list[dict[str, Any] | None],
    settings: ServingSettings,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The valid rows (and their call indices); invalid ones get an error reply."""
    try:
        instances = validate_instances(model.adapter, rows, settings.max_field_errors)
        require_values(instances)
        return instances, where
    except InvalidInputError:
        pass  # some row is bad: find each one (the error path only)
    kept, kept_at = [], []
    for row, i in zip(rows, where, strict=True):
        try:
            (instance,) = validate_instances(model.adapter, [row], settings.max_field_errors)
            require_values([instance])
        except InvalidInputError as exc:
            replies[i] = _error_reply(exc, i)
            continue
        kept.append(instance)
        kept_at.append(i)
    return kept, kept_at


def _predict(
    model: ServingModel,
    instances: list[dict[str, Any]],
    where: list[int],
    replies: list[dict[str, Any] | None],
    answer: Answer,
) -> None:
    """One ONNX call for every valid row; each reply is predict's answer for that row."""
    packed = model.pack_flags(instances)
    prediction, raw, scale = model.run(packed.numeric, packed.categorical)
    m = model.manifest
    bounds, label = intervals(raw, m, scale), labels(prediction, m)  # as predict computes them
    for k, item in enumerate(answer(m, prediction, bounds, label)):
        i = where[k]
        item["warnings"] = _compact(model.row_warnings(packed, k))
        try:
            require_finite(
                item,
                f"replies[{i}]",
                partial(_inputs, model, packed, k, f"calls[{i}][0]"),
            )
        except RequestError as exc:
            replies[i] = _error_reply(exc, i)
            continue
        item["version"] = m.version
        replies[i] = item


def _compact(warnings: list[dict[str, str]]) -> list[dict[str, str]]:
    """A row's warnings, imputed ones without their message (one constant per feature,
    shown by ``GET``): 1,000 rows with every feature missing then answer 3.6 MB, not 8."""
    return [
        {"field": w["field"], "code": w["code"]} if w["code"] == "imputed" else w for w in warnings
    ]


def _inputs(model: ServingModel, packed: Packed, row: int, where: str) -> list[FieldError]:
    """The out-of-range fields of a row whose answer is not finite, named in its error."""
    return out_of_range(model.row_warnings(packed, row), where)
