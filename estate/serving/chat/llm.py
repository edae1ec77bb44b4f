"""A small OpenAI-compatible chat-completions client with tool calling (stdlib only).

Groq, OpenAI, vLLM, Ollama and many others speak this wire format. Every failure is an
`LLMError` whose reason is fit to show a user: it never holds the key, a header, or the
provider's own error text (those go, scrubbed, to the log only).

Time and size are bounded: the whole exchange (every call, retry and backoff) shares
one deadline, each call waits at most min(per-call timeout, time left), and a reply
larger than `max_response_bytes` is refused without being read in full.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("estate_advisor.llm")

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
#: Less time left than this is no time for another call: give up and let the fallback answer.
MIN_CALL_SECONDS = 0.05
_CHUNK = 64 * 1024
#: What may follow ``Bearer `` in a header: visible ASCII, no spaces (RFC 9110 token68-ish).
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")


class LLMError(Exception):
    """The LLM could not give a usable answer; `reason` completes 'The language model …'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def key_problem(key: str) -> str | None:
    """Why `key` cannot be sent as a bearer token (never quoting it), or None if it can."""
    if not key:
        return "is empty"
    if not _KEY_CHARS.fullmatch(key):
        bad = next(i for i, c in enumerate(key) if not _KEY_CHARS.fullmatch(c))
        return (
            f"has a character that cannot go in an HTTP header (position {bad} of {len(key)}); "
            "store the key alone, without quotes, spaces or a newline"
        )
    return None


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class Completion:
    """One assistant turn: text, tool calls, or both, plus the message to echo back."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)


class ChatClient:
    """POST {base_url}/chat/completions with bounded retries, one deadline, bounded replies."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        timeout: float = 20.0,
        max_retries: int = 1,
        backoff: float = 0.25,
        budget: float | None = None,
        started: float | None = None,
        max_response_bytes: int = 1_000_000,
    ) -> None:
        """`budget` seconds from `started` (a `time.monotonic()` instant, default now) is the
        deadline after which no call starts or waits (default: ten per-call timeouts)."""
        self.url = base_url.rstrip("/") + "/chat/completions"
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LLMError("is misconfigured (the base URL is not an http(s) URL)")
        self._parts = parts
        self.model = model
        problem = key_problem(api_key)
        if problem is not None:  # http.client would raise with the whole header in its text
            raise LLMError("cannot be called: the configured API key " + problem)
        self._key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.budget = budget if budget is not None else timeout * 10
        self.deadline = (started if started is not None else time.monotonic()) + self.budget
        self.max_response_bytes = max_response_bytes
        self._last_timeout = 0.0

    def __repr__(self) -> str:  # never show the key, even in a debugger or traceback
        return f"ChatClient(url={self.url!r}, model={self.model!r})"

    def remaining(self) -> float:
        """Seconds left before the exchange's deadline."""
        return self.deadline - time.monotonic()

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """One chat-completions call (retried on timeouts, 429 and 5xx), parsed."""
        body = {"model": self.model, "messages": messages, "temperature": 0}
        if tools:
            body |= {"tools": tools, "tool_choice": "auto"}
        data = json.dumps(body).encode()
        last, made = "did not answer", 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                pause = self.backoff * 2 ** (attempt - 1)
                if self.remaining() - pause < MIN_CALL_SECONDS:
                    break
                time.sleep(pause)
            made += 1
            try:
                return parse_completion(self._post(data))
            except _RetryError as retry:
                last = retry.reason
                log.warning("LLM call %d failed: %s", made, self._scrub(last))
        if self.remaining() < MIN_CALL_SECONDS + self.backoff:
            raise LLMError(f"{last}, and the {self.budget:.3g} s time budget ran out")
        raise LLMError(f"{last} (after {made} attempts)")

    def _call_timeout(self) -> float:
        left = self.remaining()
        if left < MIN_CALL_SECONDS:
            raise LLMError(f"did not finish within the {self.budget:.3g} s time budget")
        return min(self.timeout, left)

    def _post(self, data: bytes) -> bytes:
        """The reply body of one POST; every failure is a _RetryError or an LLMError.

        This is the client's boundary: any exception from the network stack (whose text
        may hold a header, hence the key) is replaced by a reason naming only its type.
        """
        try:
            return self._exchange(data)
        except (LLMError, _RetryError):
            raise
        except TimeoutError:
            raise _RetryError(f"timed out after {self._last_timeout:.3g} s") from None
        except (ValueError, http.client.InvalidURL) as exc:  # 'Invalid header value b"Bearer …\n"'
            log.warning("LLM call refused by the HTTP client: %s", type(exc).__name__)
            raise LLMError(f"could not be called ({type(exc).__name__})") from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise _RetryError(f"is unreachable ({type(exc).__name__})") from None
        except Exception as exc:  # anything else the stack raises: its text is never shown
            log.warning("LLM call failed inside the HTTP client: %s", type(exc).__name__)
            raise LLMError(f"could not be called ({type(exc).__name__})") from None

    def _exchange(self, data: bytes) -> bytes:
        timeout = self._last_timeout = self._call_timeout()
        parts = self._parts
        conn_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_type(parts.hostname or "", parts.port, timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(
                "POST",
                path,
                body=data,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {self._key}",
                },
            )
            sock = conn.sock
            if sock is not None:
                sock.settimeout(self._call_timeout())
                # A hard stop: at the deadline the socket is shut, so even a provider
                # dripping its status line or headers cannot hold the request longer.
                watchdog = threading.Timer(self.remaining(), _shut, (sock,))
                watchdog.daemon = True
                watchdog.start()
            try:
                response = conn.getresponse()
                if response.status >= 400:
                    self._refuse(response.status, response.read1(500))
                return self._read(response, sock)
            finally:
                if sock is not None:
                    watchdog.cancel()
        finally:
            conn.close()

    def _read(self, response: http.client.HTTPResponse, sock: socket.socket | None) -> bytes:
        """The body, at most `max_response_bytes`, each wait bounded by the time left."""
        limit = self.max_response_bytes
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise LLMError(f"sent a reply larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while not response.isclosed():  # http.client closes it once the body is read
            if sock is not None:
                sock.settimeout(self._call_timeout())
            chunk = response.read1(min(_CHUNK, limit + 1 - size))  # one recv, not "fill n"
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise LLMError(f"sent a reply larger than {limit} bytes")
        return b"".join(chunks)

    def _refuse(self, status: int, detail: bytes) -> None:
        """Map an HTTP error status; the provider's text goes to the log, scrubbed."""
        text = self._scrub(detail.decode("utf-8", "replace"))
        log.warning("LLM answered HTTP %d: %s", status, text[:200])
        if status in RETRYABLE:
            raise _RetryError(f"answered HTTP {status}")
        if status in (401, 403):
            raise LLMError(f"rejected our authorisation (HTTP {status})")
        raise LLMError(f"answered HTTP {status}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text


def _shut(sock: socket.socket) -> None:
    """End every wait on `sock` now (a blocked read returns or raises at once)."""
    with contextlib.suppress(OSError):  # already closed: the exchange ended first
        sock.shutdown(socket.SHUT_RDWR)


class _RetryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_completion(payload: bytes) -> Completion:
    """The first choice's message, or an `LLMError` saying what was malformed."""
    try:
        body = json.loads(payload)
        message = body["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        raise LLMError("sent a malformed reply (no choices[0].message)") from None
    if not isinstance(message, dict):
        raise LLMError("sent a malformed reply (message is not an object)")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise LLMError("sent a malformed reply (content is not text)")
    calls = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise LLMError("sent a malformed tool call")
    for raw in raw_calls:
        try:
            function = raw["function"]
            args = function.get("arguments") or "{}"
            args = args if isinstance(args, str) else json.dumps(args)
            calls.append(ToolCall(str(raw["id"]), str(function["name"]), args))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise LLMError("sent a malformed tool call") from None
    if not calls and not (content or "").strip():
        raise LLMError("sent an empty reply")
    echo: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        echo["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return Completion(content, calls, echo)
