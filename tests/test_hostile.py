"""Hostile-input tier: generated and hand-picked bad requests over real HTTP.

Every function in `bench.targets.TARGETS` runs under functions-framework's production
server (gunicorn) on localhost and must answer every request below with a status under
500, stay up, and not grow in memory beyond a bound after warm-up. `make test` sends a
few thousand requests; `make bench` runs the same tests with ``--hostile-examples 10000``.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bench.server import Server, request, run_function
from bench.targets import TARGETS, Target

pytestmark = [pytest.mark.hostile, pytest.mark.slow]

JSON = "application/json"
MEMORY_BOUND = 64 * 1024 * 1024  # growth allowed between warm-up and the end


class Client:
    """One keep-alive connection that reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, body: bytes, content_type: str | None = JSON, method: str = "POST") -> int:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, "/", body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        status = answer.status
        assert status < 500, f"{status} for {body[:300]!r}: {data[:500]!r}"
        if status >= 400 and method != "HEAD":
            assert answer.getheader("Content-Type") == "application/problem+json", data[:300]
            assert json.loads(data)["status"] == status
        return status

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module", params=[t.name for t in TARGETS])
def served(request: pytest.FixtureRequest, ames_store: Path) -> Iterator[tuple[Target, Server]]:
    target = next(t for t in TARGETS if t.name == request.param)
    env = {"WORKERS": "1", "THREADS": "2"}
    with run_function(target.name, ames_store, ready_body=target.body(), extra_env=env) as server:
        yield target, server


# -- generated requests ---------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def instances(seed: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The valid example with some fields dropped, some replaced by anything, some added."""
    keys = sorted(seed)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        kept = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        row = {k: seed[k] for k in kept}
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=5)):
            row[key] = draw(json_values)
        row.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
        return row

    return build()


def bodies(target: Target) -> st.SearchStrategy[bytes]:
    """Raw request bodies: JSON (with NaN/Infinity literals) of every shape, or junk bytes."""
    rows = instances(target.instance())
    shaped = st.one_of(
        st.builds(lambda xs: {target.batch_key: xs}, st.lists(rows, max_size=4)),
        st.builds(lambda v: {target.batch_key: v}, json_values),
        st.builds(
            lambda xs, extra: {target.batch_key: xs, **extra},
            st.lists(rows, min_size=1, max_size=2),
            st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=2),
        ),
        json_values,
    )
    encoded = shaped.map(lambda v: json.dumps(v, allow_nan=True).encode())
    corrupt = st.tuples(encoded, st.integers(0, 10**6), st.binary(min_size=1, max_size=3)).map(
        lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) :]
    )
    return st.one_of(encoded, encoded, corrupt, st.binary(max_size=64))


content_types = st.sampled_from(
    [JSON, JSON, JSON, "application/json; charset=utf-8", "text/plain", None, "application/xml",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/problem+json", "APPLICATION/JSON", "json"]
)  # fmt: skip
methods = st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])


CHUNK = 1000  # examples per Hypothesis run: long runs hit an engine-internal assertion


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
        assert answer["predictions"][0]["warnings"][0]["code"] == "out_of_range"


# -- predict/explain limits: the worst request of each class at the largest allowed size ----

# The bodies bench/memory.py measures, with what each must answer; the two bodies three
# times the byte limit are left to tests/test_body_limits.py (raw sockets).
LIMIT_CASES: dict[str, set[int]] = {
    "valid full rows, max instances": {200},
    "{area} rows, max instances": {200},
    "out-of-range rows, max instances": {200, 422},
    "wrong-type rows, max instances": {400},
    "unknown keys, byte limit": {400},
    "unknown top-level keys, byte limit": {400},
    "non-object instances, max instances": {400},
    "empty objects, byte limit": {400},
    "short strings, byte limit": {400},
    "valid full rows, max explain instances": {200},
    "{area} rows, max explain instances": {200},
    "valid full rows, predict's max instances": {413},
    "wrong-type rows, max explain instances": {400},
}


def test_worst_request_of_each_class_at_the_limits(
    served: tuple[Target, Server], ames_manifest: Any
) -> None:
    """Every body bench/memory.py measures for this function, as large as the limits
    allow: the status it must get, a small problem+json, and an instance still serving."""
    from bench.memory import CASES, Limits
    from functions.settings import Settings

    target, server = served
    limits = Limits.from_settings(Settings())
    cases = [c for c in CASES if c.function == target.name and c.name in LIMIT_CASES]
    assert cases
    for case in cases:
        payload = case.build(ames_manifest, limits)
        status, headers, data = request(server.port, "POST", payload, {"Content-Type": JSON}, 120)
        assert status in LIMIT_CASES[case.name], (case.name, data[:500])
        assert len(data) < 8_000_000, case.name
        answer = json.loads(data)
        if status >= 400:
            assert headers["Content-Type"] == "application/problem+json", case.name
            assert len(answer.get("errors", [])) <= 50, case.name
        elif target.name == "predict" and len(answer["predictions"]) > 100:
            assert all("warnings" not in p for p in answer["predictions"]), case.name
            assert "warning_summary" in answer, case.name
        valid = json.dumps(target.body()).encode()
        assert request(server.port, "POST", valid, {"Content-Type": JSON})[0] == 200, case.name
    assert server.alive(), server.log_tail()


# Header values are the caller's: any length (gunicorn allows 8,190 bytes a field) and any
# character HTTP allows in a value (visible ASCII, space, tab, obs-text).
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=8000,
)
TRACE_ID = "105445aa7843bc8bf206b12000100000"
header_values = st.one_of(
    HEADER_TEXT,
    st.integers(min_value=0, max_value=8000).map(lambda n: f"{TRACE_ID}/{'9' * n};o=1"),
    st.integers(min_value=0, max_value=8000).map(lambda n: f"00-{TRACE_ID}-{'b' * 16}-0{'1' * n}"),
    st.sampled_from(["", " ", "0", "-1", "v" * 8000, "http://localhost:8090"]),
)
HEADER_NAMES = [
    "traceparent",
    "X-Cloud-Trace-Context",
    "X-Request-Id",
    "X-Model-Version",
    "Origin",
    "Accept",
    "User-Agent",
]


def test_generated_header_values_never_5xx(
    served: tuple[Target, Server], hostile_examples: int
) -> None:
    target, server = served
    body = json.dumps(target.body()).encode()
    conn = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)]

    @seed(11)
    @settings(
        max_examples=max(50, hostile_examples // 20),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=4),
        method=st.sampled_from(["POST", "POST", "GET", "OPTIONS"]),
    )
    def one(headers: dict[str, str], method: str) -> None:
        sent = {"Content-Type": JSON, **headers}
        for attempt in range(2):
            try:
                payload = body if method == "POST" else None
                conn[0].request(method, "/", body=payload, headers=sent)  # latin-1 on the wire
                answer = conn[0].getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, ConnectionError):
                conn[0].close()
                conn[0] = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                if attempt:
                    raise
        assert answer.status < 500, f"{answer.status} for {headers!r:.300}: {data[:300]!r}"
        assert answer.status in (200, 204, 404), (headers, data[:300])
        if answer.status == 404:  # only an unknown pinned version may be refused
            assert "X-Model-Version" in headers, data[:300]

    try:
        one()
    finally:
        conn[0].close()
    assert server.alive(), server.log_tail()
