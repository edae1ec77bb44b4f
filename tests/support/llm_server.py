"""Local stand-ins for the two cloud services the chat function calls, over real HTTP.

`ScriptedLLM` speaks the OpenAI chat-completions wire format (including ``tool_calls``)
and answers each request with the next step of a per-test script (or, when the script
is empty, its `fallback` step: the hostile tier replays generated tool calls that way).
A step may answer a `Drip`: bytes sent slowly, with or without a Content-Length. `FakeSecretManager`
answers Secret Manager's REST ``versions/*:access`` call. Both are stdlib servers on a
free localhost port, in a thread, stopped when the test ends.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A step gets the request body and returns (status, body); body None = sleep forever-ish.
Step = Callable[[dict[str, Any]], tuple[int, Any]]


def message(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> Any:
    """A chat-completions response body with one choice."""
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": msg,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
    }


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def tool_results(body: dict[str, Any]) -> dict[str, Any]:
    """The tool messages the client sent back, by tool_call_id, decoded."""
    return {
        m["tool_call_id"]: json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"
    }


@dataclass(frozen=True)
class Drip:
    """A body sent `size` bytes at a time with `pause` seconds between writes."""

    data: bytes
    pause: float = 0.0
    size: int = 1
    length: bool = True  # send a Content-Length (False: the body ends when the socket does)
    raw: bool = False  # `data` is the whole response, status line and headers included


@dataclass
class ScriptedLLM:
    url: str = ""
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fallback: Step | None = None  # answers when the script is empty (None: a 500)


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scripted_llm() -> Iterator[ScriptedLLM]:
    state = ScriptedLLM()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            step = state.script.pop(0) if state.script else state.fallback
            if self.path != "/v1/chat/completions" or step is None:
                status, payload = 500, {"error": f"unscripted request to {self.path}"}
            else:
                status, payload = step(body)
            drip = payload if isinstance(payload, Drip) else None
            if drip is None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                drip = Drip(data, size=len(data) or 1)
            try:
                if not drip.raw:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if drip.length:
                        self.send_header("Content-Length", str(len(drip.data)))
                    self.end_headers()
                for start in range(0, len(drip.data), drip.size):
                    if start and drip.pause:
                        time.sleep(drip.pause)
                    self.wfile.write(drip.data[start : start + drip.size])
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out or refused the size, and left

    with _serve(Handler) as url:
        state.url = url + "/v1"
        yield state


def slow(seconds: float, then: Any) -> Step:
    def step(_: dict[str, Any]) -> tuple[int, Any]:
        time.sleep(seconds)
        return 200, then

    return step


def reply(payload: Any, status: int = 200) -> Step:
    return lambda _: (status, payload)


@contextmanager
def fake_secret_manager(secrets: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Serve ``GET /v1/<name>:access`` for the given secret versions; yield (url, paths)."""
    import google_crc32c

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            name = self.path.split("?")[0].removeprefix("/v1/").removesuffix(":access")
            if name in secrets:
                data = secrets[name].encode()
                status, body = (
                    200,
                    {
                        "name": name,
                        "payload": {
                            "data": base64.b64encode(data).decode(),
                            "dataCrc32c": str(google_crc32c.value(data)),
                        },
                    },
                )
            else:
                status, body = (
                    404,
                    {
                        "error": {
                            "code": 404,
                            "message": f"Secret [{name}] not found",
                            "status": "NOT_FOUND",
                        }
                    },
                )
            out = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    with _serve(Handler) as url:
        yield url, seen
