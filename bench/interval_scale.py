"""What the adaptive interval's scale output costs at predict time, on a real bundle.

Times the bundle's own graph twice on the same packed rows (real Ames training rows,
packed as serving packs them): once asking for ``prediction`` and ``raw`` from a copy of
the graph without the scale head, once for all three outputs from the graph as shipped,
and then `intervals` from the outputs (fixed band vs adaptive)::

    python -m bench.interval_scale [--artifacts ./artifacts] [--model ames] [--repeats 2000]

Numbers come from whatever machine runs this; they are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from estate.contract.bundle import PREDICTION_OUTPUT, RAW_OUTPUT, SCALE_OUTPUT
from estate.runtime.outputs import intervals
from estate.runtime.session import open_session
from estate.storage.registry import read_bundle
from estate.storage.store import open_store

BATCH = 1000


def without_scale(model_bytes: bytes) -> bytes:
    """The same graph with the scale head cut off (only the nodes the two outputs need)."""
    model = onnx.load_from_string(model_bytes)
    names = [i.name for i in model.graph.input]
    extractor = onnx.utils.Extractor(model)
    cut = extractor.extract_model(names, [PREDICTION_OUTPUT, RAW_OUTPUT])
    cut.opset_import.extend(o for o in model.opset_import if o not in cut.opset_import)
    data: bytes = cut.SerializeToString()
    return data


def paired_us(a: Callable[[], object], b: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median microseconds of `a` and of `b`, called alternately (after 50 untimed calls
    each) so a busy machine slows both alike; and the median of the paired differences."""
    for _ in range(50):
        a()
        b()
    gc.collect()
    ns = np.empty((repeats, 2), dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(repeats):
        t0 = clock()
        a()
        t1 = clock()
        b()
        ns[i] = (t1 - t0, clock() - t1)
    return {
        "a_us": round(float(np.median(ns[:, 0])) / 1e3, 2),
        "b_us": round(float(np.median(ns[:, 1])) / 1e3, 2),
        "extra_us": round(float(np.median(ns[:, 1] - ns[:, 0])) / 1e3, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="./artifacts")
    parser.add_argument("--model", default="ames")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)
    bundle = read_bundle(open_store(args.artifacts), args.model)
    m = bundle.manifest
    if m.interval is None or m.interval.adaptive is None:
        raise SystemExit(f"{args.model}/{m.version} has no adaptive interval to measure.")
    full = open_session(bundle.model_bytes)
    cut = open_session(without_scale(bundle.model_bytes))
    rng = np.random.default_rng(0)
    # Rows spread over the training distribution: each numeric feature at a random
    # training quantile, each category drawn by its training frequency.
    numeric = np.array(
        [
            [f.quantiles[rng.choice(sorted(f.quantiles))] for f in m.input.numeric]
            for _ in range(BATCH)
        ],
        dtype=np.float64,
    )
    categorical = np.array(
        [
            [
                rng.choice(
                    list(c.frequencies),
                    p=np.array(list(c.frequencies.values())) / sum(c.frequencies.values()),
                )
                for c in m.input.categorical
            ]
            for _ in range(BATCH)
        ],
        dtype=object,
    )
    two, three = [PREDICTION_OUTPUT, RAW_OUTPUT], [PREDICTION_OUTPUT, RAW_OUTPUT, SCALE_OUTPUT]
    fixed = m.model_copy(update={"interval": m.interval.model_copy(update={"adaptive": None})})
    one_n, one_c = numeric[:1], categorical[:1]
    _, raw1, scale1 = full.run(one_n, one_c, three)
    _, raw, scale = full.run(numeric, categorical, three)
    figures: dict[str, Any] = {
        "model": f"{m.name}/{m.version} ({m.chosen})",
        # a = graph without the scale head (prediction, raw); b = as shipped (+ scale)
        "onnx_1_row": paired_us(
            lambda: cut.run(one_n, one_c, two), lambda: full.run(one_n, one_c, three), args.repeats
        ),
        "onnx_1000_rows": paired_us(
            lambda: cut.run(numeric, categorical, two),
            lambda: full.run(numeric, categorical, three),
            max(args.repeats // 20, 20),
        ),
        # a = fixed band; b = adaptive band from the scale
        "intervals_1_row": paired_us(
            lambda: intervals(raw1, fixed, None), lambda: intervals(raw1, m, scale1), args.repeats
        ),
        "intervals_1000_rows": paired_us(
            lambda: intervals(raw, fixed, None), lambda: intervals(raw, m, scale), args.repeats
        ),
        "graph_bytes": {
            "without_scale": len(without_scale(bundle.model_bytes)),
            "with_scale": len(bundle.model_bytes),
        },
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
