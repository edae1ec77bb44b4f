"""`make bench-peers`: our `predict` against KServe, MLServer, BentoML and MLflow.

    python -m bench.peers [--only kserve,mlflow] [--cold-runs 5] [--requests 1000]

Every peer serves the fitted scikit-learn pipeline the FastAPI baseline unpickles
(`bench.models`: encoder + model, ``bench/.cache/baseline.joblib``) with one worker,
from its own virtual environment under ``bench/.cache/peers/<name>/venv`` built on the
first run from ``bench/peers/requirements-<name>.txt`` (their pins clash with ours and
with each other). Our `predict` serves the ONNX bundle exported from the very same
fitted object, under functions-framework as `bench.serving` starts it. Two floors for
cold start, memory and one-row latency at concurrency 1: a functions-framework hello
world (the framework's), and `bench.peers.floor`, a function that imports numpy and
onnxruntime and answers from one session on the same graph with nothing else (the
libraries'); ours above the second floor is our own code.

For each system, with the `bench.serving` harness (`bench.server`, `bench.load`): cold
start (process start → first 200 to a real request, median of ``--cold-runs`` fresh
processes), peak RSS, one-row p50/p99 at concurrency 1 and 8, and 1,000-row batches
(p50, rows/s), each server in its own request format (`bench.peers.protocols`). Every
answer's prices are checked against the pipeline's own. Prints one table with the ratio
of ours to the fastest peer on each row and writes ``bench/peers_results.json``.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from bench.models import baseline_predict, ensure_models
from bench.onnx_latency import machine
from bench.peers import protocols
from bench.peers.measure import cold_starts, floor_latency, interleaved_one_row, warm_figures
from bench.peers.systems import KEYS, Context, say, systems
from bench.peers.table import best_peers, render
from bench.peers.venvs import prepare, versions
from bench.report import write_report
from bench.server import ServerError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="configs/ames.toml")
    p.add_argument("--source", default="./artifacts", help="store whose chosen model to fit")
    p.add_argument("--cache", default="bench/.cache", help="the fitted pair (bench.models)")
    p.add_argument(
        "--refit", action="store_true", help="fit the pair again (keeps the peers' venvs)"
    )
    p.add_argument(
        "--only",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        help=f"comma-separated systems to run, of: {','.join(KEYS)} (default: all)",
    )
    p.add_argument("--cold-runs", type=int, default=5, help="fresh processes per system")
    p.add_argument("--requests", type=int, default=1000, help="one-row requests at concurrency 1")
    p.add_argument(
        "--requests-c8", type=int, default=None, help="at concurrency 8 (default: 2 x --requests)"
    )
    p.add_argument("--batch-repeats", type=int, default=10, help="timed 1,000-row batches")
    p.add_argument("--warmup", type=int, default=200, help="untimed one-row requests first")
    p.add_argument(
        "--interleave-rounds",
        type=int,
        default=20,
        help="then one-row blocks with every system up at once, in turns (0: skip)",
    )
    p.add_argument("--interleave-block", type=int, default=100, help="requests per block")
    p.add_argument("--threads", type=int, default=8, help="gunicorn THREADS for ours (WORKERS=1)")
    p.add_argument("--ort-threads", type=int, default=1, help="ESTATE_ORT_THREADS for ours")
    p.add_argument(
        "--ort-batch-threads",
        type=int,
        default=2,
        help="ESTATE_ORT_BATCH_THREADS for ours (the peers' XGBoost uses every core)",
    )
    p.add_argument("--tmpdir", default="/dev/shm", help="TMPDIR of every server (see README)")
    p.add_argument(
        "--peer-omp-threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the peers (default: unset, XGBoost uses every core)",
    )
    p.add_argument("--ready-timeout", type=float, default=180.0, help="s to the first answer")
    p.add_argument("--out", default="bench/peers_results.json")
    args = p.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(KEYS))
    if unknown:
        p.error(f"unknown system(s) {unknown} in --only; choose from {','.join(KEYS)}")
    if args.requests_c8 is None:
        args.requests_c8 = 2 * args.requests
    return args


def context(args: argparse.Namespace) -> Context:
    """Fit (or reuse) the pair, and what the answers must be: the pipeline's own prices."""
    cache = Path(args.cache)
    root = cache.resolve() / "peers"
    if args.refit and root.is_dir():
        # bench.models empties the whole cache to refit: keep the venvs (minutes to build).
        aside = cache.resolve().with_name(cache.name + ".peers-aside")
        shutil.rmtree(aside, ignore_errors=True)
        root.rename(aside)
        try:
            models = ensure_models(args.config, args.source, cache, refit=True)
        finally:
            aside.rename(root)
    else:
        models = ensure_models(args.config, args.source, cache, refit=args.refit)
    try:
        payload = joblib.load(models.joblib_path)
    except (ModuleNotFoundError, AttributeError) as exc:
        sys.exit(f"error: {models.joblib_path} was pickled by older code ({exc}); run with --refit")
    expected = baseline_predict(payload, models.rows)
    return Context(
        models=models,
        args=args,
        root=root,
        kinds=protocols.column_kinds(models.rows, payload["features"]),
        log_target=bool(payload["log_target"]),
        expected=[float(v) for v in expected],
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = context(args)
    settings = {
        k: getattr(args, k)
        for k in (
            "cold_runs",
            "requests",
            "requests_c8",
            "batch_repeats",
            "warmup",
            "interleave_rounds",
            "interleave_block",
        )
    }
    settings.update(
        threads=args.threads,
        ort_threads=args.ort_threads,
        ort_batch_threads=args.ort_batch_threads,
        tmpdir=args.tmpdir,
    )
    settings["peer_omp_threads"] = args.peer_omp_threads
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "platform": platform.platform()},
        "load_average": {"start": round(os.getloadavg()[0], 2)},
        "model": {
            "name": ctx.models.name,
            "version": ctx.models.version,
            "chosen": ctx.models.chosen,
            "holdout_rows": len(ctx.models.rows),
        },
        "settings": settings,
        "systems": {},
    }
    for system in systems(ctx):
        if args.only and system.key not in args.only:
            continue
        entry: dict[str, Any] = {"label": system.label, "protocol": system.protocol}
        entry["path"] = system.path
        report["systems"][system.key] = entry
        try:
            prepare(ctx, system)
            entry["versions"] = versions(ctx, system)
            load = round(os.getloadavg()[0], 2)
            say(f"measuring {system.label} (load average {load}) …")
            entry["load_average_start"] = load
            entry["cold_start"] = cold_starts(ctx, system)
            entry.update((floor_latency if system.cold_only else warm_figures)(ctx, system))
            entry["load_average_end"] = round(os.getloadavg()[0], 2)
        except (ServerError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            entry["error"] = str(exc)
            say(f"{system.key} FAILED: {exc}")
    answered = [s for s in systems(ctx) if s.key in report["systems"]]
    answered = [s for s in answered if "error" not in report["systems"][s.key]]
    if args.interleave_rounds and len(answered) > 1:
        try:
            load = os.getloadavg()[0]
            say(f"one-row latency, every system up at once (load average {load:.2f}) …")
            blocks = interleaved_one_row(
                ctx, answered, args.interleave_rounds, args.interleave_block
            )
        except (ServerError, RuntimeError, OSError) as exc:
            report["interleaved_error"] = str(exc)
            say(f"interleaved one-row run FAILED: {exc}")
        else:
            for key, figures in blocks.items():
                report["systems"][key]["c1_interleaved"] = figures
    report["load_average"]["end"] = round(os.getloadavg()[0], 2)
    report["best_peer"] = best_peers(report)
    print(render(report))
    write_report(report, args.out)
    return 1 if any("error" in v for v in report["systems"].values()) else 0
