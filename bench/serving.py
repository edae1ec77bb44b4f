"""`make bench`: our ONNX functions vs the FastAPI + joblib baseline, side by side.

One run, one fitted model (see `bench.models`), the same request bodies for both:

    python -m bench.serving [--soak-seconds 60] [--cold-runs 5] [--refit]

Measures cold start (process start → first 200, median of fresh processes, peak RSS),
the model call alone in-process, HTTP p50/p99 at concurrency 1 and 8, 1,000-row batch
rows/s and a soak at concurrency 8 (throughput, errors, RSS start/end); prints a table
and writes ``bench/results.json``. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from bench.load import hammer
from bench.models import Models, baseline_predict, ensure_models
from bench.onnx_latency import machine
from bench.report import ratios, render, write_report
from bench.server import free_port, function_command, request, run_server
from bench.targets import TARGETS
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore

BATCH = 1000


@dataclass(frozen=True)
class System:
    """A server under test: how to start it on a port, with which environment."""

    key: str
    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str]
    batch_key: str = "instances"


def _function(target: str) -> Callable[[int], list[str]]:
    return lambda port: function_command(target, port)


def systems(models: Models, args: argparse.Namespace) -> list[System]:
    """Every function in TARGETS under functions-framework, then the baseline."""
    ours = {
        "ESTATE_ARTIFACTS": str(models.artifacts),
        "ESTATE_MODEL_NAME": models.name,
        "ESTATE_ORT_THREADS": str(args.ort_threads),
        "WORKERS": str(args.workers),
        "THREADS": str(args.threads),
        "TMPDIR": args.tmpdir,  # gunicorn's worker heartbeat file lives here
    }
    out = [
        System(
            t.name,
            f"{t.name}: ONNX on functions-framework (gunicorn)",
            _function(t.name),
            ours,
            t.batch_key,
        )
        for t in TARGETS
    ]
    baseline_cmd = [sys.executable, "-m", "uvicorn", "bench.baseline.app:app"]
    baseline_cmd += ["--host", "127.0.0.1", "--log-level", "warning", "--port"]
    out.append(
        System(
            "baseline",
            "baseline: FastAPI + uvicorn, joblib pipeline, pandas",
            lambda port: [*baseline_cmd, str(port)],
            {"MODEL_PATH": str(models.joblib_path)},
        )
    )
    return out


def bodies(system: System, rows: list[dict[str, Any]]) -> tuple[list[bytes], bytes]:
    """One-row bodies cycling through the holdout rows, and one 1,000-row body."""
    key = system.batch_key
    singles = [json.dumps({key: [r]}).encode() for r in rows]
    batch = json.dumps({key: [rows[i % len(rows)] for i in range(BATCH)]}).encode()
    return singles, batch


def cold_starts(system: System, body: dict[str, Any], runs: int) -> dict[str, Any]:
    """Fresh processes: seconds from Popen to the first 200, and peak RSS then."""
    seconds, peaks, headers = [], [], []
    for _ in range(runs):
        port = free_port()
        with run_server(system.command(port), port, system.env, ready_body=body) as server:
            seconds.append(server.first_answer)
            peaks.append(server.peak_rss_bytes())
            if "X-Cold-Start-Ms" in server.first_headers:
                headers.append(float(server.first_headers["X-Cold-Start-Ms"]))
    out: dict[str, Any] = {
        "runs": runs,
        "median_s": round(statistics.median(seconds), 3),
        "all_s": [round(s, 3) for s in seconds],
        "peak_rss_mib": round(statistics.median(peaks) / 2**20, 1),
    }
    if headers:
        out["x_cold_start_ms_median"] = round(statistics.median(headers), 1)
    return out


def warm_figures(system: System, rows: list[dict[str, Any]], args: argparse.Namespace) -> Any:
    """Latency, batch and soak figures from one warm server process."""
    singles, batch = bodies(system, rows)
    port = free_port()
    first = json.loads(singles[0])
    with run_server(system.command(port), port, system.env, ready_body=first) as server:
        hammer(port, singles, 2, total=200)  # warm-up
        _, _, data = request(port, "POST", singles[0], {"Content-Type": "application/json"})
        decoded = json.loads(data)  # {"predictions": [...]} or {"explanations": [...]}
        answer = next(v for v in decoded.values() if isinstance(v, list))[0]
        figures: dict[str, Any] = {"first_row_answer": answer}
        figures["c1"] = hammer(port, singles, 1, total=args.requests).summary()
        figures["c8"] = hammer(port, singles, 8, total=args.requests_c8).summary()
        run = hammer(port, [batch], 1, total=args.batch_repeats)
        figures["batch"] = {**run.summary(BATCH), "rows": BATCH}
        p50 = figures["batch"]["p50_ms"]
        figures["batch"]["rows_per_s_at_p50"] = round(BATCH / (p50 / 1e3), 1) if p50 else None
        rss_start = server.rss_bytes()
        soak = hammer(port, singles, 8, seconds=args.soak_seconds).summary()
        soak.update(
            seconds=args.soak_seconds,
            rss_start_mib=round(rss_start / 2**20, 1),
            rss_end_mib=round(server.rss_bytes() / 2**20, 1),
            alive=server.alive(),
        )
        figures["soak"] = soak
    return figures


def time_calls(call: Callable[[int], object], repeats: int) -> dict[str, float]:
    """Median and p99 microseconds of call(i), after 50 untimed warm-up calls."""
    for i in range(50):
        call(i)
    gc.collect()
    ns = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        call(i)
        ns[i] = time.perf_counter_ns() - t0
    return {
        "median_us": round(float(np.median(ns)) / 1e3, 1),
        "p99_us": round(float(np.percentile(ns, 99)) / 1e3, 1),
        "calls": repeats,
    }


def in_process(models: Models, args: argparse.Namespace) -> dict[str, Any]:
    """The model call alone, one row: onnxruntime session vs the unpickled pipeline."""
    bundle = read_bundle(LocalStore(models.artifacts), models.name)
    model = ServingModel(bundle.manifest, bundle.model_bytes, args.ort_threads)
    rows = models.rows
    packed = [model.pack([r])[:2] for r in rows]
    payload = joblib.load(models.joblib_path)
    n = len(rows)
    validate = model.adapter.validate_python
    big = [rows[i % n] for i in range(BATCH)]
    return {
        "onnx_run_1_row": time_calls(lambda i: model.run(*packed[i % n]), args.requests),
        "serving_path_1_row": time_calls(
            lambda i: model.predict(validate([rows[i % n]])), args.requests
        ),
        "serving_path_1000_rows": time_calls(lambda i: model.predict(validate(big)), 10),
        "pack_1000_rows": time_calls(lambda i: model.pack(big), 10),
        "baseline_predict_1_row": time_calls(
            lambda i: baseline_predict(payload, [rows[i % n]]), max(200, args.requests // 4)
        ),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    p.add_argument("--config", default="configs/ames.toml")
    p.add_argument("--source", default="./artifacts", help="store whose chosen model to fit")
    p.add_argument("--cache", default="bench/.cache", help="where the fitted pair is kept")
    p.add_argument("--refit", action="store_true", help="fit again even if the cache is full")
    p.add_argument("--cold-runs", type=int, default=5)
    p.add_argument("--requests", type=int, default=2000, help="requests at concurrency 1")
    p.add_argument("--requests-c8", type=int, default=4000, help="requests at concurrency 8")
    p.add_argument("--batch-repeats", type=int, default=10)
    p.add_argument("--soak-seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=1, help="gunicorn WORKERS for our functions")
    p.add_argument("--threads", type=int, default=8, help="gunicorn THREADS for our functions")
    p.add_argument("--ort-threads", type=int, default=1, help="ESTATE_ORT_THREADS")
    p.add_argument(
        "--tmpdir",
        default="/dev/shm",
        help="TMPDIR of our server: in-memory, like /tmp on Cloud Functions (see README)",
    )
    p.add_argument("--only", nargs="*", help="system keys to run (default: all)")
    p.add_argument("--out", default="bench/results.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = ensure_models(args.config, args.source, Path(args.cache), refit=args.refit)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": {"name": models.name, "version": models.version, "chosen": models.chosen},
        "settings": {k: getattr(args, k) for k in ("workers", "threads", "ort_threads", "tmpdir")},
        "in_process": in_process(models, args),
        "systems": {},
    }
    for system in systems(models, args):
        if args.only and system.key not in args.only:
            continue
        print(f"measuring {system.label} …", flush=True)
        body = {system.batch_key: [models.rows[0]]}
        report["systems"][system.key] = {
            "label": system.label,
            "cold_start": cold_starts(system, body, args.cold_runs),
            **warm_figures(system, models.rows, args),
        }
    report["ratios"] = ratios(report)
    print(render(report))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
