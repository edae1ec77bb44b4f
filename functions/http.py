"""Shared HTTP plumbing: body limits, JSON parsing, responses and error mapping.

Entry points stay thin: they call `handle` with a function from the parsed body to a
response dict; every `HttpError` becomes its problem+json answer, and anything else
becomes a 500 that is logged, never a crashed instance.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import flask

from functions.errors import (
    PROBLEM_CONTENT_TYPE,
    HttpError,
    method_not_allowed,
    too_large,
    unsupported_media,
)
from functions.schema import parse_json
from functions.settings import get_settings

log = logging.getLogger("estate_advisor.functions")

# Cold-start timing: from this module's import (the instance's code starting, before
# the lazy model load) to the end of the first request the instance answers without 5xx.
_IMPORTED_AT = time.perf_counter()
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
                response.headers["X-Cold-Start-Ms"] = f"{(now - _IMPORTED_AT) * 1e3:.1f}"
    return response


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    return flask.Response(
        json.dumps(body, allow_nan=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def problem_response(error: HttpError) -> flask.Response:
    return flask.Response(
        json.dumps(error.to_problem()),
        status=error.status,
        mimetype=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def read_json_body(request: flask.Request, max_bytes: int) -> Any:
    """The decoded JSON body, enforcing content type and size before reading it all."""
    ctype = (request.mimetype or "").lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise unsupported_media(
            f"Send JSON with 'Content-Type: application/json' (got {ctype or 'none'!r})."
        )
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(f"The body has {length} bytes; the limit is {max_bytes}. Split the batch.")
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise too_large(f"The body exceeds {max_bytes} bytes. Split the batch.")
    return parse_json(raw)


def handle(
    request: flask.Request,
    *,
    on_get: Callable[[], Any],
    on_post: Callable[[flask.Request], Any],
) -> flask.Response:
    """Dispatch by method and turn every outcome into a JSON response (timings, CORS)."""
    started = time.perf_counter()
    response = _timing_headers(_dispatch(request, on_get, on_post), started)
    response.headers.extend(cors_headers(request))
    return response


_ALLOWED_HEADERS = "Content-Type, X-Request-Id, X-Model-Version"
_EXPOSED_HEADERS = "X-Model-Version, Retry-After, Server-Timing, X-Cold-Start-Ms"


def cors_headers(request: flask.Request) -> dict[str, str]:
    """CORS for the web page: allowed origins come from settings; others get no grant."""
    origin = request.headers.get("Origin")
    if not origin:
        return {}
    allowed = get_settings().cors_origins
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
) -> flask.Response:
    try:
        if request.method == "GET":
            return json_response(on_get())
        if request.method == "POST":
            return json_response(on_post(request))
        if request.method == "OPTIONS":
            return flask.Response(status=204, headers={"Allow": "GET, POST, OPTIONS"})
        raise method_not_allowed("GET, POST, OPTIONS")
    except HttpError as error:
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
