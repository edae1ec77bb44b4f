"""`estate beam-score` on Beam's local runners next to `estate score`, same file, same bundle.

Generates one CSV of Ames-like rows (bench.score_throughput.generate), scores it with
`estate score` (this venv) and with `estate beam-score` (.venv-beam, ``make beam-venv``)
on each local runner asked for, and reports wall-clock rows/s, including each process's
start-up (Beam's pipeline construction and the runner's own start)::

    python -m bench.beam_throughput [--artifacts ./artifacts] [--rows 1000000]
        [--runners DirectRunner DirectRunner:multi_processing PrismRunner]

``DirectRunner:multi_processing`` runs the direct runner with one worker process per
core (``--direct_running_mode multi_processing --direct_num_workers N``). A runner that
cannot start here (Prism downloads its binary unless one is installed) is reported as
failed, not hidden. Figures are reported (table + bench/beam_results.json), never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.score_throughput import generate

REPO = Path(__file__).resolve().parent.parent
BEAM_PYTHON = REPO / ".venv-beam" / "bin" / "python"


def timed(command: list[str], out: Path) -> dict[str, Any]:
    """Run one scorer; its seconds, and the rows its Parquet output holds (all of them?)."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"seconds": seconds, "error": done.stderr.strip().splitlines()[-1:]}
    return {"seconds": seconds, "rows_written": pq.read_metadata(out).num_rows}


def runner_args(runner: str) -> list[str]:
    name, _, mode = runner.partition(":")
    args = [f"--runner={name}"]
    if mode == "multi_processing":
        args += ["--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count()}"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="./artifacts")
    parser.add_argument("--model", default="ames")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=16_384)
    parser.add_argument(
        "--runners",
        nargs="+",
        default=["DirectRunner", "DirectRunner:multi_processing", "PrismRunner"],
    )
    parser.add_argument("--json", default=str(REPO / "bench" / "beam_results.json"))
    args = parser.parse_args(argv)
    if not BEAM_PYTHON.exists():
        raise SystemExit("No .venv-beam: run `make beam-venv` first.")
    if not (Path(args.artifacts) / "models" / args.model / "serving.json").is_file():
        raise SystemExit(f"No {args.model} model in {args.artifacts}: run `make train` first.")
    common = ["--store", args.artifacts, "--model", args.model, "--id-column", "PID"]
    common += ["--chunk-rows", str(args.chunk_rows)]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="estate-beam-bench-") as tmp:
        source = Path(tmp) / f"houses-{args.rows}.csv"
        generate(args.rows, source)
        out = Path(tmp) / "scores.parquet"
        score = [sys.executable, "-m", "estate.cli.main", "score", "--input", str(source)]
        score += ["--output", str(out), "--quiet", *common]
        runs.append({"path": "estate score", **timed(score, out)})
        for runner in args.runners:
            beam = [str(BEAM_PYTHON), "-m", "estate.cli.main", "beam-score"]
            beam += ["--input", str(source), "--output", str(out), *common]
            beam += ["--", *runner_args(runner)]
            runs.append({"path": f"estate beam-score ({runner})", **timed(beam, out)})
    print(f"{args.rows:,} Ames-like rows (CSV), chunks of {args.chunk_rows:,}, 1 ORT thread")
    print(f"{'path':<52} {'seconds':>8} {'rows/s':>9} {'rows out':>10}")
    for run in runs:
        if "error" in run:
            print(f"{run['path']:<52} {run['seconds']:>8.1f}    failed  {run['error']}")
            continue
        rate = args.rows / run["seconds"]
        print(f"{run['path']:<52} {run['seconds']:>8.1f} {rate:>9,.0f} {run['rows_written']:>10,}")
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.json).write_text(
        json.dumps({"machine": machine, "rows": args.rows, "runs": runs}, indent=2) + "\n"
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
