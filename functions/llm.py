"""A small OpenAI-compatible chat-completions client with tool calling (stdlib only).

Groq, OpenAI, vLLM, Ollama and many others speak this wire format. Every failure is an
`LLMError` with a reason fit to show a user; the API key is never logged, never put in
an error message, and scrubbed from anything the server sends back.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("estate_advisor.llm")

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class LLMError(Exception):
    """The LLM could not give a usable answer; `reason` completes 'The language model …'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    """POST {base_url}/chat/completions with bounded retries and a per-call timeout."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        timeout: float = 20.0,
        max_retries: int = 1,
        backoff: float = 0.25,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff

    def __repr__(self) -> str:  # never show the key, even in a debugger or traceback
        return f"ChatClient(url={self.url!r}, model={self.model!r})"

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """One chat-completions call (retried on timeouts, 429 and 5xx), parsed."""
        body = {"model": self.model, "messages": messages, "temperature": 0}
        if tools:
            body |= {"tools": tools, "tool_choice": "auto"}
        data = json.dumps(body).encode()
        last = "did not answer"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return parse_completion(self._post(data))
            except _RetryError as retry:
                last = retry.reason
                log.warning("LLM call %d failed: %s", attempt + 1, last)
        raise LLMError(f"{last} (after {self.max_retries + 1} attempts)")

    def _post(self, data: bytes) -> bytes:
        request = urllib.request.Request(
            self.url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self._key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as exc:
            detail = self._scrub(exc.read(500).decode("utf-8", "replace"))
            if exc.code in RETRYABLE:
                raise _RetryError(f"answered HTTP {exc.code}") from None
            if exc.code in (401, 403):
                raise LLMError(f"refused the API key (HTTP {exc.code})") from None
            raise LLMError(f"answered HTTP {exc.code}: {detail[:200]}") from None
        except TimeoutError:
            raise _RetryError(f"timed out after {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _RetryError(f"timed out after {self.timeout:g} s") from None
            raise _RetryError(f"is unreachable ({self._scrub(str(exc.reason))})") from None
        except (ConnectionError, OSError) as exc:
            raise _RetryError(f"is unreachable ({type(exc).__name__})") from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text


class _RetryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_completion(payload: bytes) -> Completion:
    """The first choice's message, or an `LLMError` saying what was malformed."""
    try:
        body = json.loads(payload)
        message = body["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError("sent a malformed reply (no choices[0].message)") from None
    if not isinstance(message, dict):
        raise LLMError("sent a malformed reply (message is not an object)")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise LLMError("sent a malformed reply (content is not text)")
    calls = []
    for raw in message.get("tool_calls") or []:
        try:
            function = raw["function"]
            args = function.get("arguments") or "{}"
            args = args if isinstance(args, str) else json.dumps(args)
            calls.append(ToolCall(str(raw["id"]), str(function["name"]), args))
        except (KeyError, TypeError):
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
