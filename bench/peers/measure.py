"""What `make bench-peers` measures on each system: cold starts, then one warm process's
latency, batch and memory figures, every answer's prices checked against the pipeline's."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from bench.load import LoadResult, hammer
from bench.peers import protocols
from bench.peers.systems import Context, System, say
from bench.server import Server, ServerError, free_port, process_tree, request, run_server

BATCH = 1000
JSON = {"Content-Type": "application/json"}
AGREE = 1e-3  # largest relative price difference that still counts as the same model


def reap(server: Server, timeout: float = 10.0) -> None:
    """Make sure nothing of the server's process group outlives it (workers, supervisors)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(server.proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(server.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def agreement(system: System, status: int, answer: bytes, want: Sequence[float]) -> float:
    """Largest relative difference between the answer's prices and the pipeline's own."""
    if status != 200:
        raise ServerError(f"{system.key} answered {status} to a valid request: {answer[:500]!r}")
    try:
        got = protocols.prices(system.protocol, answer, system.raw_log)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(
            f"{system.key}'s answer holds no prices ({exc}): {answer[:500]!r}"
        ) from exc
    if len(got) != len(want):
        raise ServerError(f"{system.key} answered {len(got)} prices for {len(want)} rows")
    return max(abs(g - w) / abs(w) for g, w in zip(got, want, strict=True))


def cold_starts(ctx: Context, system: System) -> dict[str, Any]:
    """Fresh processes: seconds from Popen to the first 200, and peak RSS right then."""
    rows = ctx.models.rows
    ready = protocols.body(system.protocol, rows[:1], ctx.kinds)
    seconds, peaks = [], []
    for run in range(ctx.args.cold_runs):
        port = free_port()
        argv, env = system.launch(port)
        with run_server(
            argv, port, env, ready_body=ready, path=system.path, deadline_s=ctx.args.ready_timeout
        ) as server:
            seconds.append(server.first_answer)
            peaks.append(server.peak_rss_bytes())
        reap(server)
        say(f"  {system.key} cold start {run + 1}/{ctx.args.cold_runs}: {seconds[-1]:.3f} s")
    return {
        "runs": len(seconds),
        "median_s": round(statistics.median(seconds), 3),
        "all_s": [round(s, 3) for s in seconds],
        "peak_rss_mib": round(statistics.median(peaks) / 2**20, 1),
    }


@contextmanager
def warm_server(ctx: Context, system: System) -> Iterator[tuple[Server, list[bytes]]]:
    """`system` on a free port, past its first answer and ``--warmup`` untimed one-row
    requests, with the one-row bodies in its format; stopped and reaped after."""
    rows = ctx.models.rows
    singles = [protocols.encode(system.protocol, [r], ctx.kinds) for r in rows]
    port = free_port()
    argv, env = system.launch(port)
    ready = protocols.body(system.protocol, rows[:1], ctx.kinds)
    with run_server(
        argv, port, env, ready_body=ready, path=system.path, deadline_s=ctx.args.ready_timeout
    ) as server:
        hammer(port, singles, 2, total=ctx.args.warmup, path=system.path)
        yield server, singles
    reap(server)


def warm_figures(ctx: Context, system: System) -> dict[str, Any]:
    """Latency and batch figures from one warm server process, answers checked first."""
    args, rows = ctx.args, ctx.models.rows
    n = len(rows)
    big = [rows[i % n] for i in range(BATCH)]
    batch = protocols.encode(system.protocol, big, ctx.kinds)
    path = system.path
    with warm_server(ctx, system) as (server, singles):
        port = server.port
        status_one, _, one = request(port, "POST", singles[0], JSON, path=path)
        status_many, _, many = request(port, "POST", batch, JSON, timeout=120, path=path)
        diff = max(
            agreement(system, status_one, one, ctx.expected[:1]),
            agreement(system, status_many, many, [ctx.expected[i % n] for i in range(BATCH)]),
        )
        first = protocols.prices(system.protocol, one, system.raw_log)[0]
        figures: dict[str, Any] = {
            "answers": {
                "first_row_price": round(first, 2),
                "max_relative_difference": diff,
                "agrees": diff <= AGREE,
                "single_body_bytes": len(singles[0]),
                "batch_body_bytes": len(batch),
            }
        }
        if diff > AGREE:
            say(f"  WARNING: {system.key} prices differ from the pipeline's by up to {diff:.2e}")
        say(f"  {system.key}: {args.requests} one-row requests at concurrency 1 …")
        figures["c1"] = _one_row(server, singles, args.requests)
        say(f"  {system.key}: {args.requests_c8} one-row requests at concurrency 8 …")
        figures["c8"] = hammer(port, singles, 8, total=args.requests_c8, path=path).summary()
        say(f"  {system.key}: {args.batch_repeats} batches of {BATCH} rows …")
        run = hammer(port, [batch], 1, total=args.batch_repeats, timeout=120, path=path)
        figures["batch"] = _batch_figures(run.summary(BATCH), len(batch))
        figures["batch_rows"] = figures["batch"]  # a peer's batch is in its own form
        if system.batch_protocol is not None:
            columns = protocols.encode(system.batch_protocol, big, ctx.kinds)
            status_cols, _, by_cols = request(port, "POST", columns, JSON, timeout=120, path=path)
            diff = agreement(
                system, status_cols, by_cols, [ctx.expected[i % n] for i in range(BATCH)]
            )
            figures["answers"]["columnar_max_relative_difference"] = diff
            figures["answers"]["agrees"] &= diff <= AGREE
            say(f"  {system.key}: {args.batch_repeats} batches of {BATCH} rows, columnar …")
            run = hammer(port, [columns], 1, total=args.batch_repeats, timeout=120, path=path)
            figures["batch"] = _batch_figures(run.summary(BATCH), len(columns))
        figures["after_load"] = {
            "peak_rss_mib": round(server.peak_rss_bytes() / 2**20, 1),
            "rss_mib": round(server.rss_bytes() / 2**20, 1),
            "processes": len(process_tree(server.proc.pid)),
            "alive": server.alive(),
        }
    return figures


def _one_row(server: Server, singles: list[bytes], requests: int) -> dict[str, Any]:
    """One-row latency at concurrency 1, and the server's CPU per request meanwhile."""
    cpu = server.cpu_seconds()
    figures = hammer(server.port, singles, 1, total=requests, path=server.path).summary()
    used = server.cpu_seconds() - cpu
    figures["server_cpu_us"] = round(used / max(1, figures["requests"]) * 1e6)
    return figures


def floor_latency(ctx: Context, system: System) -> dict[str, Any]:
    """A floor's one-row figures at concurrency 1 (what the framework, or the framework
    and one onnxruntime call, cost a request on this host in this run): the bound under
    ours. The floors validate nothing and price only a complete row, so no agreement
    check and no batch."""
    with warm_server(ctx, system) as (server, singles):
        say(f"  {system.key}: {ctx.args.requests} one-row requests at concurrency 1 …")
        return {"c1": _one_row(server, singles, ctx.args.requests)}


def interleaved_one_row(
    ctx: Context, systems: Sequence[System], rounds: int, block: int
) -> dict[str, dict[str, Any]]:
    """One-row latency at concurrency 1 with every system up at once, measured in
    alternating blocks of `block` requests for `rounds` rounds (each round in a rotated
    order), so that each system meets the same moments of a shared host; a system's
    figure over its own minute (`warm_figures`) depends on what else that minute held.

    p50 and p99 over all of a system's requests, and the spread of its per-round p50s.
    """
    live: list[tuple[System, Server, list[bytes]]] = []
    latencies: dict[str, list[np.ndarray]] = {s.key: [] for s in systems}
    medians: dict[str, list[float]] = {s.key: [] for s in systems}
    errors = dict.fromkeys(latencies, 0)
    with ExitStack() as stack:
        for system in systems:
            live.append((system, *stack.enter_context(warm_server(ctx, system))))
        say(f"  interleaved: {rounds} rounds of {block} one-row requests per system …")
        for r in range(rounds):
            turn = live[r % len(live) :] + live[: r % len(live)]
            for system, server, singles in turn:
                got = hammer(server.port, singles, 1, total=block, path=system.path)
                latencies[system.key].append(got.latencies_ns)
                medians[system.key].append(float(np.median(got.latencies_ns)) / 1e6)
                errors[system.key] += got.errors
    out: dict[str, dict[str, Any]] = {}
    for key, parts in latencies.items():
        summary = LoadResult(np.concatenate(parts), errors[key]).summary()
        del summary["requests_per_s"], summary["rows_per_s"]
        summary["rounds"], summary["block"] = rounds, block
        summary["round_p50_ms"] = [round(m, 3) for m in medians[key]]
        out[key] = summary
    return out


def _batch_figures(summary: dict[str, Any], body_bytes: int) -> dict[str, Any]:
    p50 = summary["p50_ms"]
    rate = round(BATCH / (p50 / 1e3), 1) if p50 else None
    return {**summary, "rows": BATCH, "body_bytes": body_bytes, "rows_per_s_at_p50": rate}
