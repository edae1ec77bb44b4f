"""Predict and explain cost of served Ames bundles, side by side (issue 14's model lever).

For each store given, loads the champion bundle as serving does, packs 1,000 Ames rows
and times, interleaved so machine load hits every bundle alike: the ONNX call on one
onnxruntime thread (ms per 1,000 rows) and exact SHAP (ms per row over 1,000 rows).

    PYTHONPATH=. .venv/bin/python bench/experiments/predict_cost.py STORE [STORE ...]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd

from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import open_store

ROWS = 1000
REPEATS = 15


def main(stores: list[str]) -> None:
    frame = pd.read_csv("data/ames.csv.gz").drop(columns=["Order", "PID", "price"]).head(ROWS)
    rows = json.loads(frame.to_json(orient="records"))
    models = []
    for uri in stores:
        bundle = read_bundle(open_store(uri), "ames")
        model = ServingModel(bundle.manifest, bundle.model_bytes, 1, bundle.explainer_bytes)
        numeric, categorical, _ = model.pack(model.adapter.validate_python(rows))
        models.append((uri, model, numeric, categorical))
    onnx: dict[str, list[float]] = {uri: [] for uri in stores}
    shap: dict[str, list[float]] = {uri: [] for uri in stores}
    for _ in range(REPEATS):
        for uri, model, numeric, categorical in models:
            t0 = time.perf_counter()
            model.run(numeric, categorical)
            onnx[uri].append(time.perf_counter() - t0)
            if model.explainer is not None:
                t0 = time.perf_counter()
                model.explainer.shap(numeric, categorical)
                shap[uri].append(time.perf_counter() - t0)
    for uri, model, _, _ in models:
        m = model.manifest
        paths = model.explainer.paths.value.size if model.explainer and model.explainer.paths else 0
        explain = f"{np.median(shap[uri]) * 1e3 / ROWS:.3f}" if shap[uri] else "n/a"
        print(
            f"{uri}: {m.chosen} — ONNX {np.median(onnx[uri]) * 1e3:.1f} ms / {ROWS} rows "
            f"(min {min(onnx[uri]) * 1e3:.1f}), SHAP {explain} ms/row, {paths} SHAP paths, "
            f"{m.model_file.bytes / 1e6:.2f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
