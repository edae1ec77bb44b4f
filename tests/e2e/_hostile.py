"""What the hostile-input tier (test_hostile_*.py) shares: a keep-alive client that
checks every answer (under 500; a 4xx is problem+json), one production server per
function of `bench.targets.TARGETS`, and the Hypothesis strategies of raw request bodies.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from bench.server import Server, run_function
from bench.targets import TARGETS, Target

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
        self.last = data
        assert status < 500, f"{status} for {body[:300]!r}: {data[:500]!r}"
        if status >= 400 and method != "HEAD":
            assert answer.getheader("Content-Type") == "application/problem+json", data[:300]
            assert json.loads(data)["status"] == status
        return status

    def close(self) -> None:
        self.conn.close()


@contextmanager
def serve_target(name: str, ames_store: Path) -> Iterator[tuple[Target, Server]]:
    """The function `name` under functions-framework's production server, one worker;
    each test module wraps this in its own module-scoped `served` fixture (a second
    conftest.py would shadow the `conftest` module tests import helpers from)."""
    target = next(t for t in TARGETS if t.name == name)
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
