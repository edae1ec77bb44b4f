"""Where a `predict` cold start goes: each phase timed in fresh processes, median of N.

    python -m bench.cold_phases --artifacts ./artifacts [--runs 9] [--out bench/cold_phases.json]

`bench.peers` measures process start → first 200 over HTTP; this splits the same path
in-process, in the order a functions-framework instance runs it, importing the
libraries first so that each phase is charged only for what it adds:

1. ``functions_framework`` (what the hello world pays too),
2. ``numpy`` + ``onnxruntime`` (what any ONNX function pays: `bench.peers.floor`),
3. ``pydantic``, up to a first model class validating once (the rest of the stack the
   serving code is written in; its machinery loads with the first class),
4. ``import main`` and its entry point (our modules, their models and settings),
5. the first request: loading the bundle (read, checksums, session, smoke row), then
   the answer itself.

Each run is a fresh interpreter on byte-compiled sources (`bench.server.compile_sources`,
as Cloud Functions' buildpack compiles them). Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.onnx_latency import machine
from bench.server import REPO, compile_sources

#: The phases, in order, as the child prints them.
PHASES = (
    "functions_framework",
    "numpy + onnxruntime",
    "pydantic",
    "import main",
    "entry point (create_app)",
    "first request: bundle load",
    "first request: the rest",
)

# Runs in a fresh interpreter; prints one JSON object of phase → ms.
_CHILD = r"""
import json, sys, time
clock = time.perf_counter
marks = [clock()]
import functions_framework
from functions_framework import create_app
marks.append(clock())
import numpy, onnxruntime
marks.append(clock())
import pydantic, pydantic_core
from pydantic import BaseModel, Field, SecretStr
class Probe(BaseModel):  # pydantic imports its machinery on the first model class
    x: int = Field(0, ge=0)
Probe(x=1)
marks.append(clock())
sys.path.insert(0, ".")
import main
marks.append(clock())
app = create_app("predict", "main.py")
marks.append(clock())
import estate.serving.versions as versions
load_verified = versions.load_verified
loaded = []
def timed(*args, **kwargs):
    start = clock()
    model = load_verified(*args, **kwargs)
    loaded.append(clock() - start)
    return model
versions.load_verified = timed
response = app.test_client().post("/", data=sys.argv[1], content_type="application/json")
marks.append(clock())
assert response.status_code == 200, response.data
steps = [b - a for a, b in zip(marks, marks[1:])]
steps[-1:] = [loaded[0], steps[-1] - loaded[0]]
print(json.dumps([round(1e3 * s, 2) for s in steps]))
"""


def one_run(body: str, env: dict[str, str]) -> list[float]:
    """One fresh process: the phases' milliseconds."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, body],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.cold_phases",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--artifacts", default="./artifacts", help="store with a served model")
    p.add_argument("--model", default="ames", help="model name in the store")
    p.add_argument("--runs", type=int, default=9, help="fresh processes (median reported)")
    p.add_argument(
        "--body", default="examples/predict_ames.json", help="the first request (first row)"
    )
    p.add_argument("--out", default="bench/cold_phases.json")
    args = p.parse_args(argv)
    store = Path(args.artifacts)
    if not (store / "models" / args.model / "serving.json").is_file():
        p.error(f"no served model {args.model!r} in {store}: run `make train` first")
    request = json.loads((REPO / args.body).read_text())
    body = json.dumps({"instances": request["instances"][:1]})
    env = {
        **os.environ,
        "ESTATE_ARTIFACTS": str(store.resolve()),
        "ESTATE_MODEL_NAME": args.model,
        "ESTATE_PREDLOG_SAMPLE": os.environ.get("ESTATE_PREDLOG_SAMPLE", "1"),
    }
    compile_sources()
    one_run(body, env)  # untimed: the page cache warm, as in bench.peers' first run
    runs = []
    for i in range(args.runs):
        runs.append(one_run(body, env))
        print(f"run {i + 1}/{args.runs}: {sum(runs[-1]):.1f} ms", file=sys.stderr)
    medians = [round(statistics.median(r[k] for r in runs), 1) for k in range(len(PHASES))]
    report: dict[str, Any] = {
        "machine": machine(),
        "load_average": round(os.getloadavg()[0], 2),
        "runs": args.runs,
        "phases_ms": dict(zip(PHASES, medians, strict=True)),
        "total_ms": round(statistics.median(sum(r) for r in runs), 1),
        "all_runs_ms": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("| phase | median ms |\n|---|---:|")
    for name, ms in report["phases_ms"].items():
        print(f"| {name} | {ms:.1f} |")
    print(f"| total (sum of medians: {sum(medians):.1f}) | {report['total_ms']:.1f} |")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
