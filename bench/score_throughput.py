"""Batch scoring throughput and memory: `estate score` on generated files of growing size.

Generates CSV files of Ames-like rows (real rows resampled with replacement, written in
blocks, never held in memory whole) in a temporary folder, scores each in a fresh
process through the serving bundle, and reports rows/s and the process's peak RSS::

    python -m bench.score_throughput [--artifacts ./artifacts] [--rows 250000 1000000]

Flat memory means the peak RSS does not grow with the row count. Numbers come from the
machine that runs this; they are reported (table + bench/score_results.json), never
asserted.
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

import numpy as np
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parent.parent
AMES = REPO / "data" / "ames.csv.gz"

CHILD = """
import json, resource, sys, time
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import open_store
from estate.batch.score import score_file
artifacts, model, source, out, chunk = sys.argv[1:6]
bundle = read_bundle(open_store(artifacts), model)
served = ServingModel(bundle.manifest, bundle.model_bytes)
result = score_file(served, source, out, id_column="PID", chunk_rows=int(chunk), quiet=True)
print(json.dumps({
    "rows": result.rows,
    "seconds": result.seconds,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "version": bundle.manifest.version,
    "chosen": bundle.manifest.chosen,
}))
"""


def generate(rows: int, path: Path, seed: int = 7) -> None:
    """`rows` resampled Ames rows (every column, a fresh PID each), block by block."""
    base = pacsv.read_csv(AMES)
    rng = np.random.default_rng(seed)
    with pacsv.CSVWriter(path, base.schema) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            writer.write_table(base.take(rng.integers(0, base.num_rows, n)))


def run_one(artifacts: str, model: str, source: Path, chunk: int) -> dict[str, Any]:
    out = source.with_suffix(".scores.csv")
    command = [sys.executable, "-c", CHILD, artifacts, model, str(source), str(out), str(chunk)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scoring failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["input_mb"] = source.stat().st_size / 1e6
    result["output_mb"] = out.stat().st_size / 1e6
    out.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="./artifacts")
    parser.add_argument("--model", default="ames")
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--chunk-rows", type=int, default=16_384)
    parser.add_argument("--json", default=str(REPO / "bench" / "score_results.json"))
    args = parser.parse_args(argv)
    if not (Path(args.artifacts) / "models" / args.model / "serving.json").is_file() and (
        not args.artifacts.startswith("gs://")
    ):
        raise SystemExit(f"No {args.model} model in {args.artifacts}: run `make train` first.")
    results = []
    with tempfile.TemporaryDirectory(prefix="estate-score-bench-") as tmp:
        for rows in args.rows:
            source = Path(tmp) / f"houses-{rows}.csv"
            t0 = time.perf_counter()
            generate(rows, source)
            made = time.perf_counter() - t0
            result = run_one(args.artifacts, args.model, source, args.chunk_rows)
            result["generate_seconds"] = made
            results.append(result)
            source.unlink()
    print(
        f"estate score, {results[0]['chosen']} bundle {results[0]['version']}, "
        f"chunks of {args.chunk_rows:,} rows, 1 onnxruntime thread"
    )
    print(f"{'rows':>10}  {'input MB':>9}  {'seconds':>8}  {'rows/s':>9}  {'peak RSS MB':>11}")
    for r in results:
        print(
            f"{r['rows']:>10,}  {r['input_mb']:>9.0f}  {r['seconds']:>8.1f}  "
            f"{r['rows'] / r['seconds']:>9,.0f}  {r['peak_rss_mb']:>11.0f}"
        )
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.json).write_text(
        json.dumps({"machine": machine, "chunk_rows": args.chunk_rows, "runs": results}, indent=2)
        + "\n"
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
