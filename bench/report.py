"""Ratios and the printed table of `bench.serving` (Markdown, pastes into bench/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (label, path into a system's figures, unit, lower is better)
METRICS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("cold start, process → first 200 (median)", ("cold_start", "median_s"), "s", True),
    ("peak RSS after first answer", ("cold_start", "peak_rss_mib"), "MiB", True),
    ("HTTP 1 row, concurrency 1, p50", ("c1", "p50_ms"), "ms", True),
    ("HTTP 1 row, concurrency 1, p99", ("c1", "p99_ms"), "ms", True),
    ("HTTP 1 row, concurrency 8, p50", ("c8", "p50_ms"), "ms", True),
    ("HTTP 1 row, concurrency 8, p99", ("c8", "p99_ms"), "ms", True),
    ("HTTP 1 row, concurrency 8, throughput", ("c8", "requests_per_s"), "req/s", False),
    ("HTTP 1,000-row batch, p50", ("batch", "p50_ms"), "ms", True),
    ("HTTP 1,000-row batch, rows/s at p50", ("batch", "rows_per_s_at_p50"), "rows/s", False),
    ("soak at concurrency 8: throughput", ("soak", "requests_per_s"), "req/s", False),
    ("soak: errors", ("soak", "errors"), "", True),
    ("soak: RSS start", ("soak", "rss_start_mib"), "MiB", True),
    ("soak: RSS end", ("soak", "rss_end_mib"), "MiB", True),
]


def _get(figures: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _better(ours: Any, base: Any, lower_is_better: bool) -> float | None:
    """How many times better ours is (above 1: ours wins)."""
    if not isinstance(ours, int | float) or not isinstance(base, int | float):
        return None
    if ours == 0 or base == 0:
        return None
    return round(base / ours if lower_is_better else ours / base, 2)


def ratios(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per function: baseline ÷ ours for times and memory, ours ÷ baseline for rates."""
    systems = report["systems"]
    base = systems.get("baseline")
    out: dict[str, dict[str, float | None]] = {}
    if base is None:
        return out
    calls = report["in_process"]
    call_ratio = _better(
        calls["onnx_run_1_row"]["median_us"], calls["baseline_predict_1_row"]["median_us"], True
    )
    for key, figures in systems.items():
        if key == "baseline":
            continue
        mine = {
            label: _better(_get(figures, path), _get(base, path), lower)
            for label, path, _, lower in METRICS
            if path[0] != "soak" or path[1] == "requests_per_s"
        }
        mine["model call alone, 1 row, in-process (median)"] = call_ratio
        out[key] = mine
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}"


def render(report: dict[str, Any]) -> str:
    """The side-by-side table for each of our functions, then the in-process calls."""
    systems = report["systems"]
    base = systems.get("baseline", {})
    m = report["machine"]
    lines = [
        f"{report['date']} · {m['cpu']} ({m['cores']} cores) · Python {m['python']} · "
        f"model {report['model']['name']} {report['model']['version']} "
        f"({report['model']['chosen']}) · settings {report['settings']}",
        "",
    ]
    for key, figures in systems.items():
        if key == "baseline":
            continue
        ratio = report["ratios"].get(key, {})
        # The baseline only predicts: for explain the ratios price in the SHAP work.
        title = f"{key} (prediction + exact SHAP)" if key == "explain" else key
        lines += [
            f"| {title} vs baseline predict | unit | ours | baseline | ours better by |",
            "|---|---|---:|---:|---:|",
        ]
        for label, path, unit, _ in METRICS:
            times = ratio.get(label)
            lines.append(
                f"| {label} | {unit} | {_fmt(_get(figures, path))} | {_fmt(_get(base, path))} "
                f"| {_fmt(times) + 'x' if times is not None else ''} |"
            )
        call = report["in_process"]
        lines.append(
            f"| model call alone, 1 row, in-process (median) | µs "
            f"| {_fmt(call['onnx_run_1_row']['median_us'])} "
            f"| {_fmt(call['baseline_predict_1_row']['median_us'])} "
            f"| {_fmt(ratio.get('model call alone, 1 row, in-process (median)'))}x |"
        )
        lines.append("")
    lines += ["| in-process call | median µs | p99 µs |", "|---|---:|---:|"]
    for name, fig in report["in_process"].items():
        lines.append(f"| {name} | {_fmt(fig['median_us'])} | {_fmt(fig['p99_us'])} |")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: str) -> None:
    """Write a bench's figures as JSON (creating the folder) and say where."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
