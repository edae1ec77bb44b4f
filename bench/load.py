"""A bounded load generator on loopback: threads, one keep-alive connection each.

Fixed request count (latency runs) or fixed duration (soak). Every request's latency is
kept; a non-200 or a broken connection counts as an error. The client shares the
machine with the server, so its own cost (about 100 µs a request in Python) is inside
every figure, for both systems alike.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADERS = {"Content-Type": "application/json"}


@dataclass
class LoadResult:
    """Latencies (ns) of completed requests, errors, and the wall time of the run."""

    latencies_ns: np.ndarray
    errors: int
    statuses: Counter[int] = field(default_factory=Counter)
    wall_s: float = 0.0

    def summary(self, rows_per_request: int = 1) -> dict[str, Any]:
        ms = self.latencies_ns / 1e6
        done = int(ms.size)
        return {
            "requests": done,
            "errors": self.errors,
            "p50_ms": round(float(np.percentile(ms, 50)), 3) if done else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 3) if done else None,
            "max_ms": round(float(ms.max()), 3) if done else None,
            "requests_per_s": round(done / self.wall_s, 1) if self.wall_s else None,
            "rows_per_s": round(done * rows_per_request / self.wall_s, 1) if self.wall_s else None,
        }


def hammer(
    port: int,
    bodies: list[bytes],
    concurrency: int,
    *,
    total: int | None = None,
    seconds: float | None = None,
    timeout: float = 60.0,
    path: str = "/",
) -> LoadResult:
    """POST `bodies` (cycled) to `path` with `concurrency` threads until `total` or `seconds`."""
    if (total is None) == (seconds is None):
        raise ValueError("give exactly one of total= or seconds=")
    ticket = itertools.count()  # next() on a count is atomic under the GIL
    lock = threading.Lock()
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    errors = [0]
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine: list[int] = []
        seen: Counter[int] = Counter()
        failed = 0
        clock = time.perf_counter_ns
        while True:
            i = next(ticket)
            if (total is not None and i >= total) or time.perf_counter() >= deadline:
                break
            body = bodies[i % len(bodies)]
            t0 = clock()
            try:
                conn.request("POST", path, body=body, headers=HEADERS)
                answer = conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                continue
            elapsed = clock() - t0
            seen[answer.status] += 1
            if answer.status == 200:
                mine.append(elapsed)
            else:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return LoadResult(np.array(latencies, dtype=np.int64), errors[0], statuses, wall)
