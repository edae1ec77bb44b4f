"""`make bench-memory`: the worst request of each class, and what it costs a worker.

For every class of request below (valid and hostile, each at the largest size the
limits allow) a fresh ``predict`` or ``explain`` process is started under
functions-framework's gunicorn (``WORKERS=1 THREADS=4``), warmed up with one valid
request, and sent the request once. The worker's peak resident memory is reset just
before (``echo 5 > /proc/<worker>/clear_refs``) and read just after (``VmHWM``), so the
figure is that one request's peak RSS growth over the worker's resident memory before
it, next to the worker's idle RSS::

    python -m bench.memory [--artifacts ./artifacts] [--only predict] [--out bench/memory.json]

A fresh process per class keeps one class's freed-but-kept arenas from hiding the next
one's cost. Figures are reported, never asserted (``tests/e2e/test_hostile.py`` checks the
answers); the issue's aim is no request under the limits raising a worker's peak RSS by
more than 150 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.onnx_latency import machine
from bench.report import write_report
from bench.server import Server, process_tree, request, run_function
from bench.targets import REPO
from estate.contract.bundle import Manifest
from estate.serving.settings import ServingSettings
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore

MB = 1_000_000
EXAMPLE = REPO / "examples" / "predict_ames.json"


@dataclass(frozen=True)
class Limits:
    """The serving limits the requests are sized to (from the environment, as served)."""

    max_bytes: int
    max_instances: int
    explain_instances: int
    max_values: int  # JSON values (commas + brackets), see estate.serving.jsonbody.parse_json

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> Limits:
        # getattr: the same script measured the code before these limits existed
        explain = getattr(settings, "explain_max_instances", settings.max_instances)
        values = getattr(settings, "max_json_values", settings.max_request_bytes)
        return cls(settings.max_request_bytes, settings.max_instances, explain, values)


@dataclass(frozen=True)
class Case:
    """One class of request: which function, what it is, how to build its body."""

    function: str
    name: str
    build: Callable[[Manifest, Limits], bytes]
    chunked: bool = False  # send with Transfer-Encoding: chunked, no Content-Length
    at_once: int = 1  # copies sent concurrently (the instance's concurrency, 8 by default)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _example_row() -> dict[str, Any]:
    row: dict[str, Any] = json.loads(EXAMPLE.read_text())["instances"][0]
    return row


def _rows_fitting(row: dict[str, Any], count: int, max_bytes: int) -> bytes:
    """``count`` copies of `row`, fewer if that would not fit in `max_bytes`."""
    one = len(_dumps(row)) + 1
    fit = min(count, (max_bytes - 64) // one)
    return _dumps({"instances": [row] * fit})


def _values(text: bytes) -> int:
    return text.count(b",") + text.count(b"{") + text.count(b"[")


def _fill(prefix: bytes, item: Callable[[int], bytes], suffix: bytes, lim: Limits) -> bytes:
    """prefix + item(0),item(1),… + suffix, as long as it stays within both the byte
    limit and the JSON value limit (the largest such body the server parses)."""
    parts, size, values, i = [], len(prefix) + len(suffix), _values(prefix + suffix) + 1, 0
    while True:
        part = item(i)
        if size + len(part) + 1 > lim.max_bytes or values + _values(part) + 1 > lim.max_values:
            break
        parts.append(part)
        size += len(part) + 1
        values += _values(part) + 1
        i += 1
    return prefix + b",".join(parts) + suffix


def _predict_limit(lim: Limits) -> int:
    return lim.max_instances


def _explain_limit(lim: Limits) -> int:
    return lim.explain_instances


def valid_rows(count: Callable[[Limits], int]) -> Callable[[Manifest, Limits], bytes]:
    return lambda _m, lim: _rows_fitting(_example_row(), count(lim), lim.max_bytes)


def tiny_rows(count: Callable[[Limits], int]) -> Callable[[Manifest, Limits], bytes]:
    """{"area": 1800} rows: every other feature imputed, one warning each per row."""
    return lambda _m, lim: _rows_fitting({"area": 1800}, count(lim), lim.max_bytes)


def out_of_range_rows(manifest: Manifest, lim: Limits) -> bytes:
    """Every numeric feature just below its training minimum, in every row."""
    row = {f.name: f.min - 1 for f in manifest.input.numeric}
    return _rows_fitting(row, lim.max_instances, lim.max_bytes)


def wrong_type_rows(count: Callable[[Limits], int]) -> Callable[[Manifest, Limits], bytes]:
    """Every feature of every row the wrong type (``true``): one field error per cell."""

    def build(manifest: Manifest, lim: Limits) -> bytes:
        row = dict.fromkeys(manifest.input.names(), True)
        return _rows_fitting(row, count(lim), lim.max_bytes)

    return build


def unknown_keys(_m: Manifest, lim: Limits) -> bytes:
    """One instance made of as many unknown keys as the byte limit holds."""
    return _fill(b'{"instances":[{', lambda i: b'"k%07d":0' % i, b"}]}", lim)


def unknown_envelope_keys(_m: Manifest, lim: Limits) -> bytes:
    """A valid instance, then as many unknown top-level keys as fit."""
    head = b'{"instances":[' + _dumps(_example_row()) + b"],"
    return _fill(head, lambda i: b'"k%07d":0' % i, b"}", lim)


def non_object_instances(_m: Manifest, lim: Limits) -> bytes:
    """The most instances allowed, none of them an object."""
    return _dumps({"instances": [0] * lim.max_instances})


def empty_containers(_m: Manifest, lim: Limits) -> bytes:
    """One field holding as many empty objects as fit: the most Python objects per byte."""
    return _fill(b'{"instances":[{"area":[', lambda _i: b"{}", b"]}]}", lim)


def short_strings(_m: Manifest, lim: Limits) -> bytes:
    """One field holding as many distinct short strings as fit."""
    return _fill(b'{"instances":[{"area":[', lambda i: b'"%x"' % i, b"]}]}", lim)


def oversized(_m: Manifest, lim: Limits) -> bytes:
    """Three times the byte limit, all of it sent (refused unread, or read only to the cap)."""
    row = _dumps(_example_row())
    return b'{"instances":[' + b",".join([row] * (3 * lim.max_bytes // len(row))) + b"]}"


CASES: list[Case] = [
    Case("predict", "3x the byte limit, Content-Length", oversized),
    Case("predict", "3x the byte limit, chunked", oversized, chunked=True),
    Case("predict", "valid full rows, max instances", valid_rows(_predict_limit)),
    Case("predict", "{area} rows, max instances", tiny_rows(_predict_limit)),
    Case("predict", "out-of-range rows, max instances", out_of_range_rows),
    Case("predict", "wrong-type rows, max instances", wrong_type_rows(_predict_limit)),
    Case("predict", "unknown keys, byte limit", unknown_keys),
    Case("predict", "unknown top-level keys, byte limit", unknown_envelope_keys),
    Case("predict", "unknown keys, byte limit, 8 at once", unknown_keys, at_once=8),
    Case("predict", "full rows, max instances, 8 at once", valid_rows(_predict_limit), at_once=8),
    Case("predict", "non-object instances, max instances", non_object_instances),
    Case("predict", "empty objects, byte limit", empty_containers),
    Case("predict", "short strings, byte limit", short_strings),
    Case("explain", "valid full rows, max explain instances", valid_rows(_explain_limit)),
    Case("explain", "{area} rows, max explain instances", tiny_rows(_explain_limit)),
    Case("explain", "valid full rows, predict's max instances", valid_rows(_predict_limit)),
    Case("explain", "unknown keys, byte limit", unknown_keys),
    Case("explain", "wrong-type rows, max explain instances", wrong_type_rows(_explain_limit)),
    Case("explain", "empty objects, byte limit", empty_containers),
]  # fmt: skip


def worker_pid(server: Server) -> int:
    """The gunicorn worker (the master's only child with WORKERS=1)."""
    children = [pid for pid in process_tree(server.proc.pid) if pid != server.proc.pid]
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return children[0]


def status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> None:
    """Reset the process's VmHWM to its current RSS (Linux ≥ 4.0, same user)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def measure(case: Case, body: bytes, artifacts: str, env: dict[str, str]) -> dict[str, Any]:
    """Start a fresh server, warm it up, send `body` once, read the worker's peak."""
    ready = json.loads(EXAMPLE.read_text())
    with run_function(case.function, artifacts, ready_body=ready, extra_env=env) as server:
        headers = {"Content-Type": "application/json"}
        request(server.port, "POST", _dumps(ready), headers)  # a second warm-up
        pid = worker_pid(server)
        idle = status_kb(pid)["VmRSS"]
        reset_peak(pid)
        before = status_kb(pid)
        start = time.perf_counter()
        with ThreadPoolExecutor(case.at_once) as pool:
            outcomes = list(
                pool.map(lambda _: send(server.port, body, case.chunked), range(case.at_once))
            )
        seconds = time.perf_counter() - start
        status, answer, error = outcomes[0]
        statuses = sorted({o[0] for o in outcomes})
        after = status_kb(pid) if server.alive() else {"VmHWM": 0, "VmRSS": 0}
        detail = ""
        if answer and status >= 400:
            problem = json.loads(answer)
            detail = problem.get("detail", "")[:160]
        return {
            "function": case.function,
            "case": case.name,
            "request_bytes": len(body),
            "at_once": case.at_once,
            "status": status,
            "statuses": statuses,
            "error": error,
            "detail": detail,
            "response_bytes": len(answer),
            "seconds": round(seconds, 3),
            "idle_rss_mb": round(idle * 1024 / MB, 1),
            "rss_before_mb": round(before["VmRSS"] * 1024 / MB, 1),
            "peak_growth_mb": round((after["VmHWM"] - before["VmRSS"]) * 1024 / MB, 1),
            "rss_after_mb": round(after["VmRSS"] * 1024 / MB, 1),
        }


def send(port: int, body: bytes, chunked: bool) -> tuple[int, bytes, str | None]:
    """POST `body` (in 64 kB chunks without a Content-Length if `chunked`):
    (status, answer, None), or (0, b"", the error) if the connection broke."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        payload: Any = body
        if chunked:
            payload = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request("POST", "/", body=payload, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.read(), None
    except OSError as exc:  # the worker died or closed the connection
        return 0, b"", f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| function | request | body MB | status | answer MB | s | idle RSS MB | peak growth MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['function']} | {r['case']} | {r['request_bytes'] / MB:.2f} "
            f"| {'/'.join(map(str, r['statuses']))} "
            f"| {r['response_bytes'] / MB:.3f} | {r['seconds']:.2f} | {r['idle_rss_mb']:.0f} "
            f"| **{r['peak_growth_mb']:.0f}** |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("ESTATE_ARTIFACTS", "./artifacts"))
    parser.add_argument("--model", default="ames")
    parser.add_argument("--only", help="run the cases whose function or name contains this")
    parser.add_argument("--out", default=str(REPO / "bench" / "memory.json"))
    args = parser.parse_args(argv)
    # as deployed: prediction logging on, 2 malloc arenas (infra/functions.tf)
    env = {"WORKERS": "1", "THREADS": "4", "TMPDIR": "/dev/shm", "MALLOC_ARENA_MAX": "2"}
    limits = Limits.from_settings(ServingSettings())
    manifest = read_bundle(LocalStore(args.artifacts), args.model).manifest
    cases = [c for c in CASES if not args.only or args.only in f"{c.function} {c.name}"]
    rows = []
    for case in cases:
        body = case.build(manifest, limits)
        threads = str(max(4, case.at_once))  # as many request threads as copies at once
        row = measure(case, body, args.artifacts, {**env, "THREADS": threads})
        rows.append(row)
        print(
            f"{row['function']:8} {row['case']:45} {row['status']} "
            f"{row['seconds']:7.2f}s  +{row['peak_growth_mb']:.0f} MB  {row['detail'][:60]}",
            flush=True,
        )
    print()
    print(render(rows))
    write_report(
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "load_average": os.getloadavg(),
            "model": {
                "name": manifest.name,
                "version": manifest.version,
                "chosen": manifest.chosen,
            },
            "limits": vars(limits),
            "server": env,
            "cases": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
