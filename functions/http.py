"""Shared HTTP plumbing: body limits, JSON parsing, responses and error mapping.

Entry points stay thin: they call `handle` with a function from the parsed body to a
response dict; every `HttpError` becomes its problem+json answer, and anything else
becomes a 500 that is logged, never a crashed instance.

Request bodies are bounded in size and in time for everyone who reads them, by
`BodyGuard` (installed on functions-framework's app by `install_body_guard`, see
main.py): functions-framework reads the *whole* remaining body after every answer (its
``after_request`` hook), so without the guard a refused 1 GB upload would still be read
into memory, and a client that announces 7 MB and sends a byte a second would hold a
request thread for as long as it likes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask

from functions.errors import (
    PROBLEM_CONTENT_TYPE,
    HttpError,
    bad_request,
    method_not_allowed,
    request_timeout,
    too_large,
    unprocessable,
    unsupported_media,
)
from functions.schema import parse_json
from functions.settings import Settings, get_settings

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
    """The answer as compact JSON; 422 if a non-finite number slipped past the checks,
    413 if it is larger than ``ESTATE_MAX_RESPONSE_BYTES``."""
    try:
        text = json.dumps(body, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        # A backstop: predict and explain name the inputs first (errors.require_finite).
        raise unprocessable(
            "The answer would hold a number that is not finite (NaN or infinity); bring "
            "the inputs closer to their training range (GET this URL for the ranges)."
        ) from None
    limit = get_settings().max_response_bytes
    if len(text) > limit:
        raise too_large(
            f"The answer would be {len(text)} bytes; the limit is {limit}. Send fewer "
            "instances per request (explain: or a smaller top_k)."
        )
    return flask.Response(text, status=status, mimetype="application/json", headers=headers)


def problem_response(error: HttpError) -> flask.Response:
    return flask.Response(
        json.dumps(error.to_problem()),
        status=error.status,
        mimetype=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def read_json_body(request: flask.Request, max_bytes: int) -> Any:
    """The decoded JSON body, enforcing content type and size before reading it, the
    read deadline while reading (`BodyGuard`), and the JSON value budget before parsing."""
    ctype = (request.mimetype or "").lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise unsupported_media(
            f"Send JSON with 'Content-Type: application/json' (got {_shown(ctype) or 'none'!r})."
        )
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(f"The body has {length} bytes; the limit is {max_bytes}. Split the batch.")
    settings = get_settings()
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
        _large_bodies.enter(request.environ, settings)
    return parse_json(raw, settings.max_json_values)


def _shown(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _timed_out(body: Any) -> bool:
    return isinstance(body, BoundedInput) and body.timed_out


def handle(
    request: flask.Request,
    *,
    on_get: Callable[[], Any],
    on_post: Callable[[flask.Request], Any],
) -> flask.Response:
    """Dispatch by method and turn every outcome into a JSON response (timings, CORS)."""
    started = time.perf_counter()
    try:
        response = _timing_headers(_dispatch(request, on_get, on_post), started)
    finally:
        _large_bodies.leave(request.environ)
    response.headers.extend(cors_headers(request))
    return response


class LargeBodies:
    """At most ``ESTATE_LARGE_BODY_SLOTS`` requests with a body over
    ``ESTATE_LARGE_BODY_BYTES`` are parsed and answered at once in this process.

    One such request can cost ~130 MB at the limits (bench/memory.py) and an instance's
    memory is shared by its concurrent requests (Cloud Functions: 512 MiB, concurrency
    8), so large batches take turns; small requests never wait. A request that cannot
    get a turn within the body read deadline gets a 503 with ``Retry-After``.
    """

    _KEY = "estate_advisor.large_body"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: tuple[int, threading.BoundedSemaphore] | None = None

    def _semaphore(self, slots: int) -> threading.BoundedSemaphore:
        with self._lock:
            if self._slots is None or self._slots[0] != slots:
                self._slots = (slots, threading.BoundedSemaphore(slots))
            return self._slots[1]

    def enter(self, environ: dict[str, Any], settings: Settings) -> None:
        semaphore = self._semaphore(settings.large_body_slots)
        if not semaphore.acquire(timeout=settings.body_read_seconds):
            raise HttpError(
                503,
                "Busy with large requests",
                f"This instance is already answering {settings.large_body_slots} requests "
                f"over {settings.large_body_bytes} bytes; retry in a moment, or send smaller "
                "batches (they never wait).",
                "busy",
                headers={"Retry-After": "1"},
            )
        environ[self._KEY] = semaphore

    def leave(self, environ: dict[str, Any]) -> None:
        semaphore = environ.pop(self._KEY, None)
        if semaphore is not None:
            semaphore.release()


_large_bodies = LargeBodies()


_ALLOWED_HEADERS = "Content-Type, X-Request-Id, X-Model-Version, X-Api-Key"
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


# -- request bodies bounded in size and time ------------------------------------------------


class BoundedInput:
    """``wsgi.input`` that ends after `cap` bytes, and at its deadline (`timed_out`).

    Whoever reads it (our `read_json_body`, or functions-framework draining the rest
    after the answer) gets end-of-body instead of waiting or buffering without limit.
    """

    def __init__(self, inner: Any, cap: int) -> None:
        self._inner = inner
        self._left = cap
        self.timed_out = False

    def expire(self, sock: socket.socket | None) -> None:
        """Stop reading: a read blocked in ``recv`` returns at once (called by `Deadlines`)."""
        self.timed_out = True
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RD)

    def _size(self, size: int | None) -> int:
        return self._left if size is None or size < 0 else min(size, self._left)

    def read(self, size: int | None = -1) -> bytes:
        return self._take(lambda n: self._inner.read(n), size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(lambda n: self._inner.readline(n), size)

    def _take(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        if self.timed_out or self._left <= 0:
            return b""
        try:
            data = read(self._size(size))
        except Exception:
            if self.timed_out:
                return b""
            raise
        self._left -= len(data)
        return b"" if self.timed_out else data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class Deadlines:
    """One daemon thread that ends body reads past their deadline.

    A thread blocked in ``recv`` cannot be interrupted from inside; shutting the
    socket's read side wakes it with end-of-file, and `BoundedInput` reports the
    timeout. Per request this costs a dict insert and delete under a lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, socket.socket | None, BoundedInput]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, sock: socket.socket | None, body: BoundedInput) -> int:
        with self._cond:
            key = next(self._ids)
            self._due[key] = (time.monotonic() + seconds, sock, body)
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._thread = threading.Thread(
                    target=self._run, name="body-read-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return key

    def release(self, key: int) -> None:
        with self._cond:
            self._due.pop(key, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for key in [k for k, (due, _, _) in self._due.items() if due <= now]:
                    _, sock, body = self._due.pop(key)
                    body.expire(sock)
                nearest = min((due for due, _, _ in self._due.values()), default=None)
                self._cond.wait(None if nearest is None else nearest - now)


_deadlines = Deadlines()


def largest_body(settings: Settings) -> int:
    """The largest body any function of this source accepts (the guard's cap)."""
    return max(settings.max_request_bytes, settings.chat_max_request_bytes)


class BodyGuard:
    """WSGI middleware: refuse a body announced above every limit before anything reads
    it, and bound every read of the others in bytes and in time.

    After the answer is written, what is left of the body is read and discarded (never
    kept) until its end or the read deadline, so a client that sends its whole body
    before reading, as most HTTP libraries do, still gets the 413 instead of a broken
    pipe, and the connection can be reused.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        settings = get_settings()
        cap = largest_body(settings)
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and declared in ("", "0"):
            return self.app(environ, start_response)
        raw = environ["wsgi.input"]
        body = BoundedInput(raw, cap + 1)
        key = _deadlines.watch(settings.body_read_seconds, environ.get("gunicorn.socket"), body)
        if declared.isdigit() and int(declared) > cap:
            error = too_large(f"The body has {int(declared)} bytes; the limit is {cap}.")
            payload = json.dumps(error.to_problem()).encode()
            start_response(
                "413 Request Entity Too Large",
                [("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(payload)))],
            )
            return _ThenDrain([payload], raw, body, key)
        environ["wsgi.input"] = body
        try:
            answer = self.app(environ, start_response)
        except BaseException:
            _deadlines.release(key)
            raise
        return _ThenDrain(answer, raw, body, key)


#: A refused body is read and dropped up to this many times the largest accepted body
#: (then the connection is closed): CPU for a client's sake, never memory.
DRAIN_BODIES = 4


class _ThenDrain:
    """The answer's iterable; on close (after the answer is sent) the rest of the body
    is read in 64 kB pieces and dropped, until its end, the body's deadline, or
    `DRAIN_BODIES` times the largest body."""

    def __init__(self, answer: Iterable[bytes], raw: Any, body: BoundedInput, key: int) -> None:
        self._answer, self._raw, self._body, self._key = answer, raw, body, key

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        left = DRAIN_BODIES * largest_body(get_settings())
        try:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()
            while left > 0 and not self._body.timed_out and (piece := self._raw.read(65536)):
                left -= len(piece)
        except Exception:  # the client left or broke its framing: nothing more to drop
            return
        finally:
            _deadlines.release(self._key)


def install_body_guard() -> None:
    """Wrap functions-framework's app in `BodyGuard` (main.py calls this on import, which
    functions-framework runs inside its app's context); elsewhere it does nothing."""
    if not flask.has_app_context():
        return
    app = flask.current_app
    if not isinstance(app.wsgi_app, BodyGuard):
        app.wsgi_app = BodyGuard(app.wsgi_app)  # type: ignore[method-assign]
