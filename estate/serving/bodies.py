"""Request bodies bounded for everyone who reads them: in size, in time, and in how many
large ones are answered at once.

`BodyGuard` (installed on functions-framework's app by `install_body_guard`, see main.py)
exists because functions-framework reads the *whole* remaining body after every answer
(its ``after_request`` hook): without it a refused 1 GB upload would still be read into
memory, and a client that announces 7 MB and sends a byte a second would hold a request
thread for as long as it likes. `estate.serving.http.read_json_body` reads through it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask

from estate.serving.problems import PROBLEM_CONTENT_TYPE, HttpError, too_large
from estate.serving.settings import GuardSettings, HttpSettings

#: When this instance's code started: main.py imports this module before anything else
#: (the clock of ``X-Cold-Start-Ms``, estate.serving.http).
STARTED_AT = time.perf_counter()


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

    def enter(self, environ: dict[str, Any], settings: HttpSettings) -> None:
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


large_bodies = LargeBodies()


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
    timeout. Per request this costs a dict insert and delete under a lock, and no
    wake-up: the thread is woken only when a new deadline falls before the one it
    sleeps until (with one read deadline per process, only when it sleeps idle), not
    on every request, where the wake-up took the GIL in the middle of the answer.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, socket.socket | None, BoundedInput]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread next looks at `_due` on its own

    def watch(self, seconds: float, sock: socket.socket | None, body: BoundedInput) -> int:
        with self._cond:
            key = next(self._ids)
            due = time.monotonic() + seconds
            self._due[key] = (due, sock, body)
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._wakes_at = -math.inf  # it looks as soon as it starts
                self._thread = threading.Thread(
                    target=self._run, name="body-read-deadlines", daemon=True
                )
                self._thread.start()
            elif due < self._wakes_at:
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
                nearest = min((due for due, _, _ in self._due.values()), default=math.inf)
                self._wakes_at = nearest
                self._cond.wait(None if nearest == math.inf else nearest - now)


_deadlines = Deadlines()


class BodyGuard:
    """WSGI middleware: refuse a body announced above every limit before anything reads
    it, and bound every read of the others in bytes and in time.

    After the answer is written, what is left of the body is read and discarded (never
    kept) until its end or the read deadline, so a client that sends its whole body
    before reading, as most HTTP libraries do, still gets the 413 instead of a broken
    pipe, and the connection can be reused.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], settings: GuardSettings) -> None:
        self.app = app
        self.settings = settings

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        cap = self.settings.largest_body
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and declared in ("", "0"):
            return self.app(environ, start_response)
        raw = environ["wsgi.input"]
        body = BoundedInput(raw, cap + 1)
        key = _deadlines.watch(
            self.settings.body_read_seconds, environ.get("gunicorn.socket"), body
        )
        if declared.isdigit() and int(declared) > cap:
            error = too_large(f"The body has {int(declared)} bytes; the limit is {cap}.")
            payload = json.dumps(error.to_problem()).encode()
            start_response(
                "413 Request Entity Too Large",
                [("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(payload)))],
            )
            return _ThenDrain([payload], raw, body, key, DRAIN_BODIES * cap)
        environ["wsgi.input"] = body
        try:
            answer = self.app(environ, start_response)
        except BaseException:
            _deadlines.release(key)
            raise
        return _ThenDrain(answer, raw, body, key, DRAIN_BODIES * cap)


#: A refused body is read and dropped up to this many times the largest accepted body
#: (then the connection is closed): CPU for a client's sake, never memory.
DRAIN_BODIES = 4


class _ThenDrain:
    """The answer's iterable; on close (after the answer is sent) the rest of the body
    is read in 64 kB pieces and dropped, until its end, the body's deadline, or
    `DRAIN_BODIES` times the largest body."""

    def __init__(
        self, answer: Iterable[bytes], raw: Any, body: BoundedInput, key: int, most: int
    ) -> None:
        self._answer, self._raw, self._body, self._key, self._most = answer, raw, body, key, most

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        left = self._most
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


def install_body_guard(settings: GuardSettings | None = None) -> None:
    """Wrap functions-framework's app in `BodyGuard` (main.py calls this on import, which
    functions-framework runs inside its app's context); elsewhere it does nothing.

    The guard's settings are read here, once per app: it bounds the bodies of every
    function in this source, before functions-framework has picked the target."""
    if not flask.has_app_context():
        return
    app = flask.current_app
    if not isinstance(app.wsgi_app, BodyGuard):
        guard = BodyGuard(app.wsgi_app, settings or GuardSettings())
        app.wsgi_app = guard  # type: ignore[method-assign]
