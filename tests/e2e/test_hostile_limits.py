"""Hostile-input tier, limits: the worst request of each class at the largest size the
limits allow, and generated header values of any length, for every function in
`bench.targets.TARGETS` under its production server."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import JSON, serve_target
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bench.server import Server, request
from bench.targets import TARGETS, Target

pytestmark = [pytest.mark.hostile, pytest.mark.slow]


@pytest.fixture(scope="module", params=[t.name for t in TARGETS])
def served(request: pytest.FixtureRequest, ames_store: Path) -> Iterator[tuple[Target, Server]]:
    with serve_target(request.param, ames_store) as pair:
        yield pair


# -- predict/explain limits: the worst request of each class at the largest allowed size ----

# The bodies bench/memory.py measures, with what each must answer; the two bodies three
# times the byte limit are left to tests/integration/test_body_limits.py (raw sockets).
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
    from estate.serving.settings import ServingSettings

    target, server = served
    limits = Limits.from_settings(ServingSettings())
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
