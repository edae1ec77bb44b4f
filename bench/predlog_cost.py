"""What logging its predictions costs a predict request: 1,000 Ames rows and one row.

    python -m bench.predlog_cost [--artifacts ./artifacts] [--rows 1000] [--repeats 40]

Each body form (columnar ``inputs``, ``instances`` rows, one row) is answered once through
the real function (in-process), then `estate.serving.predlog.observe` is timed with that
answer, so only the logging is measured: building the lines and writing them to
``/dev/null`` (a real file descriptor). Reported: wall median and minimum, and the median
CPU time of the thread, which a shared machine's other load inflates least. Numbers come
from whatever machine runs this; never asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Wall median/min and thread-CPU median of `repeats` calls, in ms."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        call()
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return {
        "wall_median_ms": round(statistics.median(wall), 3),
        "wall_min_ms": round(min(wall), 3),
        "cpu_median_ms": round(statistics.median(cpu), 3),
    }


def bodies(names: list[str], rows: int) -> dict[str, dict[str, Any]]:
    """The first `rows` Ames sales as a columnar body (null for a missing value), as
    instances (a missing value left out), and the first one alone."""
    import pandas as pd

    table = pd.read_csv(REPO / "data" / "ames.csv.gz").head(rows)
    names = [n for n in names if n in table]
    columns = {
        n: [None if isinstance(x, float) and x != x else x for x in table[n].tolist()]
        for n in names
    }
    instances = [
        {k: v for k, v in zip(names, cells, strict=True) if v is not None}
        for cells in zip(*columns.values(), strict=True)
    ]
    return {
        f"columnar {rows}": {"inputs": columns},
        f"instances {rows}": {"instances": instances},
        "instances 1": {"instances": instances[:1]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=str(REPO / "artifacts"))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    os.environ["ESTATE_ARTIFACTS"] = args.artifacts
    import flask
    from functions_framework import create_app

    from estate.serving import predlog
    from estate.serving.settings import ServingSettings

    app = create_app(target="predict", source=str(REPO / "main.py"))  # type: ignore[no-untyped-call]
    client = app.test_client()
    schema = client.get("/").get_json()["instance_schema"]
    settings = ServingSettings()
    trace = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    results = {}
    with (
        open(os.devnull, "w") as devnull,
        flask.Flask(__name__).test_request_context("/", headers=trace),
    ):
        for label, body in bodies(list(schema["properties"]), args.rows).items():
            shown, sys.stdout = sys.stdout, devnull  # the function logs this answer too
            try:
                answer = client.post("/", json=body).get_json()
            finally:
                sys.stdout = shown

            def log(body: dict[str, Any] = body, answer: dict[str, Any] = answer) -> None:
                predlog.observe(flask.request, body, lambda _: answer, settings)

            captured = io.StringIO()
            try:
                sys.stdout = captured  # one call kept, to count its lines and bytes
                log()
                sys.stdout = devnull
                figures = timed(log, args.repeats * (20 if label == "instances 1" else 1))
            finally:
                sys.stdout = shown
            lines = captured.getvalue().splitlines()
            figures |= {"lines": len(lines), "bytes": sum(len(x) + 1 for x in lines)}
            results[label] = figures
            print(f"{label:>15}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
