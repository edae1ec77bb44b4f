"""Shared HTTP plumbing: body limits, JSON parsing, responses and error mapping.

Entry points stay thin: they call `handle` with a function from the parsed body to a
response dict; every domain error (`estate.contract.errors.RequestError`) and every
`HttpError` becomes its problem+json answer (`estate.serving.problems`), and anything else
becomes a 500 that is logged, never a crashed instance. The WSGI-level bounds on
request bodies (size, read deadline, large requests taking turns) live in
`estate.serving.bodies`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import flask
from pydantic_core import PydanticSerializationError, to_json

from estate.contract.errors import CannotEstimateError, RequestError
from estate.contract.instances import shown
from estate.serving.bodies import STARTED_AT, BoundedInput, large_bodies
from estate.serving.jsonbody import parse_json
from estate.serving.problems import (
    PROBLEM_CONTENT_TYPE,
    HttpError,
    bad_request,
    method_not_allowed,
    problem_for,
    request_timeout,
    too_large,
    unsupported_media,
)
from estate.serving.settings import HttpSettings

log = logging.getLogger("estate_advisor.functions")

# Cold-start timing: from the instance's code starting (main.py imports bodies first,
# before it builds the entry point and the model loads) to the end of the first request
# the instance answers without 5xx.
_first_lock = threading.Lock()
_first_done = False


def _timing_headers(response: flask.Response, started: float) -> flask.Response:
    """``Server-Timing`` on every answer; ``X-Cold-Start-Ms`` on the instance's first
    non-5xx one, so a caller sees what the cold start (imports + model load) cost."""
    global _first_done
    now = time.perf_counter()
    response.headers["Server-Timing"] = f"app;dur={(now - started) * 1e3:.2f}"
    if not _first_done and response.status_code < 500:
        with _first_lock:
            if not _first_done:
                _first_done = True
                response.headers["X-Cold-Start-Ms"] = f"{(now - STARTED_AT) * 1e3:.1f}"
    return response


def json_response(body: Any, limit: int, status: int = 200) -> flask.Response:
    """The answer as compact UTF-8 JSON; 422 if a non-finite number slipped past the
    checks, 413 if it is larger than `limit` (``ESTATE_MAX_RESPONSE_BYTES``)."""
    text = _encode(body)
    if len(text) > limit:
        raise too_large(
            f"The answer would be {len(text)} bytes; the limit is {limit}. Send fewer "
            "instances per request (explain: or a smaller top_k)."
        )
    return flask.Response(text, status=status, mimetype="application/json")


def _encode(body: Any) -> bytes:
    """`body` as JSON bytes, never with NaN or Infinity (`CannotEstimateError` instead).

    pydantic's Rust encoder writes a 1,000-row answer ~5x faster than ``json.dumps``; it
    would write a non-finite number as a bare ``NaN``/``Infinity``, so any output
    holding either word (a non-finite number, or a text that spells one) and anything
    it cannot encode (a lone surrogate) is encoded again by ``json.dumps``, which
    refuses non-finite numbers.
    """
    try:
        fast = to_json(body)
    except PydanticSerializationError:
        pass
    else:
        if b"NaN" not in fast and b"Infinity" not in fast:
            return fast
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        # A backstop: predict and explain name the inputs first (errors.require_finite).
        raise CannotEstimateError(
            "The answer would hold a number that is not finite (NaN or infinity); bring "
            "the inputs closer to their training range (GET this URL for the ranges)."
        ) from None


def problem_response(error: HttpError) -> flask.Response:
    return flask.Response(
        json.dumps(error.to_problem()),
        status=error.status,
        mimetype=getattr(error, "content_type", PROBLEM_CONTENT_TYPE),  # remote: plain JSON
        headers=error.headers,
    )


def read_json_body(request: flask.Request, max_bytes: int, settings: HttpSettings) -> Any:
    """The decoded JSON body, enforcing content type and size (`max_bytes`: the
    function's own limit) before reading it, the read deadline while reading
    (`BodyGuard`), and the JSON value budget before parsing."""
    ctype = (request.mimetype or "").lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise unsupported_media(
            f"Send JSON with 'Content-Type: application/json' (got {shown(ctype) or 'none'!r})."
        )
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(f"The body has {length} bytes; the limit is {max_bytes}. Split the batch.")
    body = request.environ.get("wsgi.input")
    try:
        raw = request.stream.read(max_bytes + 1)
    except Exception:  # the client broke off mid-body or sent broken chunked framing
        if not _timed_out(body):
            raise bad_request(
                "The body could not be read to its end (the connection closed early, or "
                "its chunked framing is broken); send it again."
            ) from None
        raw = b""
    if _timed_out(body):
        raise request_timeout(
            f"The body did not arrive within {settings.body_read_seconds:g} s; send it "
            "faster, or send a smaller batch."
        )
    if len(raw) > max_bytes:
        raise too_large(f"The body exceeds {max_bytes} bytes. Split the batch.")
    if length is not None and len(raw) < length:
        raise bad_request(
            f"The body ended after {len(raw)} of the {length} bytes its Content-Length "
            "announced; send it again."
        )
    if len(raw) > settings.large_body_bytes:
        large_bodies.enter(request.environ, settings)
    return parse_json(raw, settings.max_json_values)


def _timed_out(body: Any) -> bool:
    return isinstance(body, BoundedInput) and body.timed_out


def handle(
    request: flask.Request,
    *,
    on_get: Callable[[], Any],
    on_post: Callable[[flask.Request], Any],
    settings: HttpSettings,
) -> flask.Response:
    """Dispatch by method and turn every outcome into a JSON response (timings, CORS)."""
    started = time.perf_counter()
    try:
        response = _dispatch(request, on_get, on_post, settings.max_response_bytes)
        response = _timing_headers(response, started)
    finally:
        large_bodies.leave(request.environ)
    response.headers.extend(cors_headers(request, settings.cors_origins))
    return response


_ALLOWED_HEADERS = "Content-Type, X-Request-Id, X-Model-Version, X-Api-Key"
_EXPOSED_HEADERS = "X-Model-Version, Retry-After, Server-Timing, X-Cold-Start-Ms"


def cors_headers(request: flask.Request, allowed: list[str]) -> dict[str, str]:
    """CORS for the web page: `allowed` origins (``ESTATE_CORS_ORIGINS``) get a grant,
    others none."""
    origin = request.headers.get("Origin")
    if not origin:
        return {}
    if "*" not in allowed and origin not in allowed:
        return {}
    headers = {
        "Access-Control-Allow-Origin": "*" if "*" in allowed else origin,
        "Access-Control-Expose-Headers": _EXPOSED_HEADERS,
        "Vary": "Origin",
    }
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = "3600"
    return headers


def _dispatch(
    request: flask.Request,
    on_get: Callable[[], Any],
    on_post: Callable[[flask.Request], Any],
    response_limit: int,
) -> flask.Response:
    try:
        if request.method == "GET":
            got = on_get()  # JSON, or a ready response (the model card's Markdown)
            return got if isinstance(got, flask.Response) else json_response(got, response_limit)
        if request.method == "POST":
            return json_response(on_post(request), response_limit)
        if request.method == "OPTIONS":
            return flask.Response(status=204, headers={"Allow": "GET, POST, OPTIONS"})
        raise method_not_allowed("GET, POST, OPTIONS")
    except (HttpError, RequestError) as raised:
        error = problem_for(raised)  # the domain error's status, in one table
        if error.status >= 500:
            log.warning("%s", error)
        return problem_response(error)
    except Exception:  # our bug, not the caller's: log it, answer 500, keep serving
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(
            HttpError(
                500,
                "Internal error",
                "An unexpected error occurred; it was logged.",
                "internal-error",
            )
        )
