"""Hostile-input tier: generated and hand-picked bad requests over real HTTP.

Every function in `bench.targets.TARGETS` runs under functions-framework's production
server (gunicorn) on localhost and must answer every request below with a status under
500, stay up, and not grow in memory beyond a bound after warm-up. `make test` sends a
few thousand requests; `make bench` runs the same tests with ``--hostile-examples 10000``.
The chat function's requests are in test_hostile_chat.py, the largest bodies and the
header values in test_hostile_limits.py.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import CHUNK, JSON, MEMORY_BOUND, Client, bodies, content_types, methods, serve_target
from hypothesis import HealthCheck, given, seed, settings

from bench.server import Server, request
from bench.targets import TARGETS, Target

pytestmark = [pytest.mark.hostile, pytest.mark.slow]


@pytest.fixture(scope="module", params=[t.name for t in TARGETS])
def served(request: pytest.FixtureRequest, ames_store: Path) -> Iterator[tuple[Target, Server]]:
    with serve_target(request.param, ames_store) as pair:
        yield pair


def run_generated(client: Client, target: Target, examples: int) -> None:
    """Send `examples` Hypothesis-generated requests through one keep-alive client, in
    seeded chunks of at most `CHUNK` (reproducible, and each chunk explores afresh)."""
    for chunk, start in enumerate(range(0, examples, CHUNK)):

        @seed(chunk)
        @settings(
            max_examples=min(CHUNK, examples - start),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(body=bodies(target), content_type=content_types, method=methods)
        def one(body: bytes, content_type: str | None, method: str) -> None:
            client.send(body, content_type, method)

        one()


# -- hand-picked requests -------------------------------------------------------------------


def handpicked(target: Target) -> dict[str, tuple[bytes, str | None, set[int]]]:
    """Named requests with the statuses each may get."""
    key = target.batch_key
    seed = target.instance()
    first = next(iter(seed))
    text_field = next((k for k, v in seed.items() if isinstance(v, str)), first)
    number = next((k for k, v in seed.items() if isinstance(v, int | float)), first)

    def body(value: Any) -> bytes:
        return json.dumps(value, allow_nan=True).encode()

    def row(**changes: Any) -> bytes:
        return body({key: [{**seed, **changes}]})

    deep_array = b"[" * 100_000 + b"]" * 100_000
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    dup = json.dumps({key: [seed]})[:-3] + f', "{first}": 1}}]}}'
    valid = body({key: [seed]})
    return {
        "valid": (valid, JSON, {200}),
        "nan": (row(**{number: math.nan}), JSON, {400}),
        "inf": (row(**{number: math.inf}), JSON, {400}),
        "-inf": (row(**{number: -math.inf}), JSON, {400}),
        "1e999": (valid.replace(b"{", b'{"' + number.encode() + b'": 1e999, ', 2), JSON, {400}),
        "huge int 1e300": (row(**{number: 10**300}), JSON, {200, 422}),
        "huge int 1e400": (row(**{number: 10**400}), JSON, {400}),
        "5000-digit int": (body({key: [{number: 1}]}).replace(b"1", b"9" * 5000), JSON, {400}),
        "huge string": (row(**{text_field: "x" * 5_000_000}), JSON, {400}),
        "huge key": (row(**{"k" * 1_000_000: 1}), JSON, {400}),
        "many unknown keys": (row(**{f"x{i}": i for i in range(20_000)}), JSON, {400}),
        "lone surrogate": (row(**{text_field: "\ud800"}), JSON, {200, 400}),
        "NUL in string": (row(**{text_field: "a\x00b"}), JSON, {200, 400}),
        "deep nesting": (deep_array, JSON, {400}),
        "nested value": (row(**{number: nested}), JSON, {400}),
        "duplicate keys": (dup.encode(), JSON, {400}),
        "unknown top-level key": (body({key: [seed], "extra": 1}), JSON, {400}),
        "empty batch": (body({key: []}), JSON, {400}),
        "empty instance": (body({key: [{}]}), JSON, {400}),
        "empty body": (b"", JSON, {400}),
        "null": (b"null", JSON, {400}),
        "list body": (body([seed]), JSON, {400}),
        "10,000 instances": (body({key: [seed] * 10_000}), JSON, {413}),
        "10 MB body": (body({key: [seed], "pad": "x" * 10_000_000}), JSON, {413}),
        "text/plain": (valid, "text/plain", {415}),
        "no content type": (valid, None, {415}),
        "form": (b"instances=1", "application/x-www-form-urlencoded", {415}),
        "broken UTF-8": (valid.replace(b'"', b'"\xff\xfe', 1), JSON, {400}),
        "UTF-16": (json.dumps({key: [seed]}).encode("utf-16"), JSON, {400}),
        "latin-1 charset": (valid, "application/json; charset=latin-1", {200, 400, 415}),
    }


CASES = sorted(handpicked(TARGETS[0]))


@pytest.mark.parametrize("case", CASES)
def test_handpicked_hostile_request(served: tuple[Target, Server], case: str) -> None:
    target, server = served
    payload, content_type, allowed = handpicked(target)[case]
    client = Client(server.port)
    try:
        assert client.send(payload, content_type) in allowed
        assert client.send(json.dumps(target.body()).encode()) == 200  # still serving
    finally:
        client.close()
    assert server.alive(), server.log_tail()


def test_generated_requests_never_5xx_and_memory_stays_bounded(
    served: tuple[Target, Server], hostile_examples: int
) -> None:
    target, server = served
    client = Client(server.port)
    cases = handpicked(target)
    try:
        # Warm-up: every hand-picked case once, and some generated traffic.
        for payload, content_type, _ in cases.values():
            client.send(payload, content_type)
        run_generated(client, target, min(300, hostile_examples))
        warm = server.rss_bytes()

        run_generated(client, target, hostile_examples)
        for payload, content_type, _ in cases.values():
            client.send(payload, content_type)
        assert client.send(json.dumps(target.body()).encode()) == 200
    finally:
        client.close()
    assert server.alive(), server.log_tail()
    grown = server.rss_bytes() - warm
    assert grown < MEMORY_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB after warm-up"


def test_first_answer_carries_cold_start_timing(served: tuple[Target, Server]) -> None:
    """The instance's first good answer says what the cold start cost; later ones do not."""
    target, server = served
    cold_ms = float(server.first_headers["X-Cold-Start-Ms"])
    assert 0 < cold_ms < server.first_answer * 1000 + 1  # import → answer, inside Popen → answer
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/", json.dumps(target.body()), {"Content-Type": JSON})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    assert answer.status == 200
    assert answer.getheader("X-Cold-Start-Ms") is None
    assert answer.getheader("Server-Timing", "").startswith("app;dur=")


def test_extreme_finite_input_gets_a_finite_answer_or_422(served: tuple[Target, Server]) -> None:
    """1e300 square feet: never a 500 for an unencodable infinity; a 422 names the field."""
    target, server = served
    seed = target.instance()
    number = next(k for k, v in seed.items() if isinstance(v, int | float))
    body = json.dumps({target.batch_key: [{**seed, number: 1e300}]}).encode()
    status, _, data = request(server.port, "POST", body, {"Content-Type": JSON})
    answer = json.loads(data)
    assert status in (200, 422), answer
    if status == 422:
        assert f"instances[0].{number}" in {e["field"] for e in answer["errors"]}
    else:  # the server encodes with allow_nan=False, so a 200 body is finite throughout
        first = (answer.get("predictions") or answer["explanations"])[0]
        assert first["warnings"][0]["code"] == "out_of_range"
