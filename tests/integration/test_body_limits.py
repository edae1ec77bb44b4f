"""Request bodies (and one answer) at their limits over raw sockets, against
functions-framework's gunicorn server.

A body is refused above its limit before it is read, and may take at most
``ESTATE_BODY_READ_SECONDS`` to arrive (1 s here): a client that announces more than
it sends, stalls, or trickles a byte at a time gets a 408 and frees its thread, with or
without a Content-Length (chunked). The socket timeouts below only turn a hang into a
failure; no test asserts how fast an answer comes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.server import Server, request, run_function

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BODY = json.dumps(json.loads((REPO / "examples" / "predict_ames.json").read_text())).encode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(ames_store: Path) -> Iterator[Server]:
    env = {
        "WORKERS": "1",
        "THREADS": "2",
        "ESTATE_BODY_READ_SECONDS": "1",
        "ESTATE_MAX_REQUEST_BYTES": "100000",
        "ESTATE_CHAT_MAX_REQUEST_BYTES": "100000",
        "ESTATE_MAX_RESPONSE_BYTES": "100000",
    }
    with run_function("predict", ames_store, ready_body=json.loads(BODY), extra_env=env) as s:
        yield s


@dataclass
class Answer:
    status: int
    head: str
    body: bytes

    def problem(self) -> dict[str, object]:
        assert "application/problem+json" in self.head, self.head
        loaded: dict[str, object] = json.loads(self.body)
        return loaded


def head(extra: str, path: str = "/") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def exchange(port: int, start: bytes, parts: list[bytes], gap: float = 0.0) -> Answer:
    """Send `start`, then `parts` `gap` seconds apart (stopping once an answer came),
    and read the answer; a server that never answers fails the test (socket timeout)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    received = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                received.extend(chunk)
                if b"\r\n\r\n" in received:
                    answered.set()
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    try:
        sock.sendall(start)
        reader.start()
        for part in parts:
            if answered.wait(gap):
                break
            try:
                sock.sendall(part)
            except OSError:
                break
        assert answered.wait(20), "no answer: the server is waiting for the body"
        time.sleep(0.05)  # let the rest of a short answer arrive
    finally:
        sock.close()
        reader.join(5)
    raw = bytes(received)
    header, _, body = raw.partition(b"\r\n\r\n")
    text = header.decode("latin-1")
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
    if "chunked" in text.lower():
        body = _unchunk(body)
    return Answer(status, text, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + rest[:n], rest[n + 2 :]
    return out


def still_serving(server: Server) -> None:
    status, _, _ = request(server.port, "POST", BODY, JSON)
    assert status == 200
    assert server.alive(), server.log_tail()


def test_a_content_length_far_above_the_limit_is_refused_before_reading(server: Server) -> None:
    answer = exchange(
        server.port, head("Content-Length: 1000000000000\r\n") + b"{", [b"x"] * 30, 0.2
    )
    assert answer.status == 413
    assert "the limit is" in str(answer.problem()["detail"])
    still_serving(server)


def test_the_frameworks_own_paths_refuse_a_huge_body_too(server: Server) -> None:
    """functions-framework answers /favicon.ico itself, then reads the whole body: the
    guard refuses an announced 1 TB before the framework can."""
    start = head("Content-Length: 1000000000000\r\n", "/favicon.ico") + b"{"
    assert exchange(server.port, start, [b"x"] * 30, 0.2).status == 413
    still_serving(server)


@pytest.mark.parametrize(
    ("framing", "first"),
    [
        ("Content-Length: 5000\r\n", b'{"instances": ['),
        ("Transfer-Encoding: chunked\r\n", b'f\r\n{"instances": [\r\n'),
    ],
)
def test_a_stalled_body_gets_a_408(server: Server, framing: str, first: bytes) -> None:
    answer = exchange(server.port, head(framing) + first, [])
    assert answer.status == 408
    assert "did not arrive within 1 s" in str(answer.problem()["detail"])
    still_serving(server)


def test_a_body_trickling_a_byte_at_a_time_gets_a_408_before_it_ends(server: Server) -> None:
    parts = [BODY[i : i + 1] for i in range(len(BODY))]  # ~400 s at this pace
    answer = exchange(server.port, head(f"Content-Length: {len(BODY)}\r\n"), parts, 0.2)
    assert answer.status == 408
    still_serving(server)


def test_a_stalled_body_does_not_block_other_requests(server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        sock.sendall(head("Content-Length: 5000\r\n") + b"{")
        still_serving(server)  # the other request thread answers meanwhile
    finally:
        sock.close()


def test_a_chunked_body_above_the_limit_is_a_413(server: Server) -> None:
    row = json.dumps(json.loads(BODY)["instances"][0]).encode()
    chunk = b"%x\r\n%s\r\n" % (len(row) + 1, row + b",")
    start = head("Transfer-Encoding: chunked\r\n") + b'f\r\n{"instances": [\r\n'
    answer = exchange(server.port, start, [chunk] * 200, 0.0)  # ~300 kB > the 100 kB limit
    assert answer.status == 413
    still_serving(server)


def test_broken_chunked_framing_is_a_400(server: Server) -> None:
    start = head("Transfer-Encoding: chunked\r\n") + b'5\r\n{"ins\r\nzz\r\n'
    answer = exchange(server.port, start, [])
    assert answer.status == 400
    still_serving(server)


def test_a_client_leaving_mid_body_costs_no_error(server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(head("Content-Length: 5000\r\n") + b'{"instances": [')
    sock.close()
    still_serving(server)
    assert "Traceback" not in server.log_tail()


def test_an_answer_above_the_response_limit_is_a_413_over_http(server: Server) -> None:
    rows = json.dumps({"instances": [{"area": 1800}] * 5000}).encode()  # 75 kB in, ~500 kB out
    status, headers, data = request(server.port, "POST", rows, JSON)
    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    assert "the limit is 100000" in json.loads(data)["detail"]
    still_serving(server)
