"""Production server settings: gunicorn WORKERS and THREADS on 1 and 2 vCPUs, measured.

functions-framework runs gunicorn's threaded worker with ``WORKERS`` (default 1) and
``THREADS`` (default 4 per core) from the environment. This runs `predict` under each
setting, pinned to 1 CPU (``taskset -c 0``, a 1-vCPU instance) or left on both, and
reports HTTP p50/p99 and throughput at concurrency 1 and 8::

    python -m bench.sweep [--requests 800] [--out bench/sweep.json]

It reuses the model `make bench` fitted (bench/.cache); run `make bench` first.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from bench.load import hammer
from bench.server import free_port, function_command, run_server
from bench.targets import TARGETS

# (vCPUs, WORKERS, THREADS); TMPDIR is varied separately below.
GRID = [
    (1, 1, 1),
    (1, 1, 4),
    (1, 1, 8),
    (2, 1, 8),
    (2, 2, 1),
    (2, 2, 4),
    (2, 3, 2),
]


def measure(
    cpus: int, workers: int, threads: int, tmpdir: str, rows: list[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """One server with these settings: warm-up, then concurrency 1 and 8."""
    target = TARGETS[0]
    key = target.batch_key
    bodies = [json.dumps({key: [r]}).encode() for r in rows]
    port = free_port()
    command = function_command(target.name, port)
    if cpus == 1 and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {
        "ESTATE_ARTIFACTS": str(Path(args.cache) / "artifacts"),
        "ESTATE_MODEL_NAME": args.model,
        "WORKERS": str(workers),
        "THREADS": str(threads),
        "TMPDIR": tmpdir,
    }
    with run_server(command, port, env, ready_body={key: [rows[0]]}):
        hammer(port, bodies, 2, total=200)
        c1 = hammer(port, bodies, 1, total=args.requests).summary()
        c8 = hammer(port, bodies, 8, total=args.requests * 2).summary()
    return {
        "vcpus": cpus,
        "workers": workers,
        "threads": threads,
        "tmpdir": tmpdir,
        "c1": c1,
        "c8": c8,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    p.add_argument("--cache", default="bench/.cache")
    p.add_argument("--model", default="ames")
    p.add_argument("--requests", type=int, default=800)
    p.add_argument("--out", default="bench/sweep.json")
    args = p.parse_args(argv)
    pair = json.loads((Path(args.cache) / "pair.json").read_text())
    rows = pair["rows"]
    results = []
    runs = [(c, w, t, "/dev/shm") for c, w, t in GRID] + [(2, 1, 8, "/tmp")]
    lines = [
        "| vCPUs | WORKERS | THREADS | TMPDIR | c1 p50 ms | c1 p99 ms | c8 p50 ms | c8 p99 ms "
        "| c8 req/s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for cpus, workers, threads, tmpdir in runs:
        r = measure(cpus, workers, threads, tmpdir, rows, args)
        results.append(r)
        line = (
            f"| {cpus} | {workers} | {threads} | {tmpdir} | {r['c1']['p50_ms']} "
            f"| {r['c1']['p99_ms']} | {r['c8']['p50_ms']} | {r['c8']['p99_ms']} "
            f"| {r['c8']['requests_per_s']} |"
        )
        lines.append(line)
        print(line, flush=True)
    print("\n".join(lines))
    Path(args.out).write_text(json.dumps({"model": pair["version"], "runs": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
