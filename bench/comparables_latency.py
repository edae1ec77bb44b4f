"""What comparable sales add to predict: in-process ``predict_body`` with and without
``"parameters": {"comparables": k}`` on a trained Ames bundle that carries them::

    python -m bench.comparables_latency [--artifacts ./artifacts] [--repeats 2000]

Both variants run the same request body (the README's real Ames house, or a batch of
real training rows) interleaved call by call, so machine load hits them alike; the extra
cost is the difference of their medians (and of their 10th percentiles, the figure least
disturbed by other processes). Numbers come from whatever machine runs this; never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from estate.serving.predict import predict_body
from estate.serving.settings import ServingSettings
from estate.serving.versions import load_verified
from estate.storage.registry import serving_version
from estate.storage.store import open_store

REPO = Path(__file__).resolve().parents[1]


def timed(calls: list[Callable[[], Any]], repeats: int) -> list[list[float]]:
    """Microseconds of each call, `repeats` times, the calls interleaved."""
    times: list[list[float]] = [[] for _ in calls]
    for call in calls:  # warm-up
        call()
    for _ in range(repeats):
        for j, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[j].append((time.perf_counter() - start) * 1e6)
    return times


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="./artifacts")
    parser.add_argument("--model", default="ames")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)
    store = open_store(args.artifacts)
    model = load_verified(store, args.model, serving_version(store, args.model), 1)
    if model.comparable_sales is None:
        raise SystemExit(model.no_comparables_reason)
    settings = ServingSettings()
    house = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"]
    one = {"instances": house}
    print(
        f"{args.model}/{model.manifest.version}: {model.comparable_sales.rows} sales, "
        f"{len(model.manifest.comparables.features if model.manifest.comparables else {})} "
        f"features; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("1 row, k=5", one, 5),
        ("1 row, k=20", one, 20),
    ]
    for label, body, k in cases:
        asked = body | {"parameters": {"comparables": k}}
        plain, withk = timed(
            [
                partial(predict_body, model, body, settings),
                partial(predict_body, model, asked, settings),
            ],
            args.repeats,
        )
        med = statistics.median(withk) - statistics.median(plain)
        p10 = quantile(withk, 0.1) - quantile(plain, 0.1)
        print(
            f"{label}: without {statistics.median(plain):.0f} µs, with "
            f"{statistics.median(withk):.0f} µs (median); extra {med:.0f} µs median, "
            f"{p10:.0f} µs at the 10th percentile",
            flush=True,
        )
    batch = {"instances": house * 500}
    asked = batch | {"parameters": {"comparables": 5}}
    plain, withk = timed(
        [
            lambda: predict_body(model, batch, settings),
            lambda: predict_body(model, asked, settings),
        ],
        max(5, args.repeats // 200),
    )
    tracemalloc.start()
    predict_body(model, asked, settings)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"500 rows, k=5: without {statistics.median(plain) / 1e3:.1f} ms, with "
        f"{statistics.median(withk) / 1e3:.1f} ms (median); peak traced memory of the call "
        f"with comparables {peak / 1e6:.1f} MB",
        flush=True,
    )


if __name__ == "__main__":
    main()
