"""The report's table: every system side by side, and ours against the best peer."""

from __future__ import annotations

from typing import Any

from bench.peers.measure import AGREE
from bench.peers.systems import KEYS, PEERS
from bench.report import _better, _fmt, _get

# (label, path into a system's figures, unit, lower is better)
METRICS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("cold start, process → first 200 (median)", ("cold_start", "median_s"), "s", True),
    ("peak RSS after the first answer", ("cold_start", "peak_rss_mib"), "MiB", True),
    ("peak RSS after all the load below", ("after_load", "peak_rss_mib"), "MiB", True),
    ("1 row, concurrency 1, p50", ("c1", "p50_ms"), "ms", True),
    ("1 row, concurrency 1, p99", ("c1", "p99_ms"), "ms", True),
    ("1 row, concurrency 1, server CPU a request", ("c1", "server_cpu_us"), "µs", True),
    ("1 row, concurrency 1, p50, all up, in turns", ("c1_interleaved", "p50_ms"), "ms", True),
    ("1 row, concurrency 1, p99, all up, in turns", ("c1_interleaved", "p99_ms"), "ms", True),
    ("1 row, concurrency 8, p50", ("c8", "p50_ms"), "ms", True),
    ("1 row, concurrency 8, p99", ("c8", "p99_ms"), "ms", True),
    ("1 row, concurrency 8, throughput", ("c8", "requests_per_s"), "req/s", False),
    ("1,000-row batch, p50 (ours: columnar inputs)", ("batch", "p50_ms"), "ms", True),
    ("1,000-row batch, rows/s at p50", ("batch", "rows_per_s_at_p50"), "rows/s", False),
    ("1,000-row batch, p50 (ours: row objects)", ("batch_rows", "p50_ms"), "ms", True),
]


def best_peers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric: the fastest peer, its figure, and how many times better ours is.

    Above 1 ours wins (best peer ÷ ours for times and memory, ours ÷ best peer for
    rates). Only peers that answered the row count; ours or no peer: no ratio.
    """
    figures = report["systems"]
    ours = figures.get("predict", {})
    out: dict[str, dict[str, Any]] = {}
    for label, path, _, lower in METRICS:
        scored = [
            (value, key)
            for key in PEERS
            if isinstance(value := _get(figures.get(key, {}), path), int | float)
        ]
        if not scored:
            out[label] = {"peer": None, "value": None, "ours_better_by": None}
            continue
        value, key = min(scored) if lower else max(scored)
        out[label] = {
            "peer": key,
            "value": value,
            "ours_better_by": _better(_get(ours, path), value, lower),
        }
    return out


def _times(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _gist(error: str) -> str:
    """The first line of a failure and the last line of its log naming an error."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "Exception" in line]
    return " … ".join(dict.fromkeys([*lines[:1], *named[-1:]]))


def render(report: dict[str, Any]) -> str:
    """One Markdown table: every system side by side, then ours against the best peer."""
    figures = report["systems"]
    keys = [k for k in KEYS if k in figures]
    m = report["machine"]
    lines = [
        f"{report['date']} · {m['cpu']} ({m['cores']} cores) · Python {m['python']} · "
        f"load average {report['load_average']['start']} → {report['load_average']['end']} · "
        f"model {report['model']['name']} {report['model']['version']} "
        f"({report['model']['chosen']})",
        "",
        "| metric | unit | " + " | ".join(keys) + " | best peer | ours better by |",
        "|---|---|" + "---:|" * len(keys) + "---|---:|",
    ]
    for label, path, unit, _ in METRICS:
        cells = [_fmt(_get(figures[k], path)) for k in keys]
        best = report["best_peer"][label]
        times = best["ours_better_by"]
        lines.append(
            f"| {label} | {unit} | " + " | ".join(cells) + f" | {best['peer'] or '-'} "
            f"| {_times(times)} |"
        )
    for key, entry in figures.items():
        if "error" in entry:
            lines.append(f"\n{key} failed: {_gist(entry['error'])} (whole log in the JSON)")
    disagree = [k for k in keys if _get(figures[k], ("answers", "agrees")) is False]
    if disagree:
        lines.append(f"\nprices differ from the pipeline's beyond {AGREE:.0e}: {disagree}")
    return "\n".join(lines)
