"""One fit, two artefacts: our ONNX bundle and the baseline's joblib pipeline.

`make bench` compares two ways of serving *the same fitted model*: the chosen candidate
is fitted once on the Ames training rows, exported (parity-checked) to a promoted bundle
in ``bench/.cache/artifacts``, and the very same fitted object is wrapped in a
scikit-learn `Pipeline` (encoder + model) and dumped with joblib, as demo repos do.
Both are reused on the next run unless ``--refit``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import FunctionTransformer

from bench.onnx_latency import Pipeline, bench_assembler, choose, to_instances
from estate.export.exporter import export_bundle
from estate.storage.registry import promote
from estate.storage.store import LocalStore
from estate.training import candidates as cands
from estate.training.config import DatasetConfig, load_config
from estate.training.data import load_table
from estate.training.train import explain_sample, prepare

PAIR_FILE = "pair.json"


@dataclass(frozen=True)
class Models:
    """Where the two artefacts are, what they hold, and real request rows to send."""

    artifacts: Path  # local store with the promoted bundle
    joblib_path: Path  # the baseline's pickled pipeline
    name: str
    version: str
    chosen: str
    rows: list[dict[str, Any]]  # holdout rows as JSON instances


def baseline_payload(pipe: Pipeline, frame: pd.DataFrame) -> dict[str, Any]:
    """What the baseline unpickles: a fitted sklearn Pipeline and the column order."""
    encode = FunctionTransformer(pipe.encoder.transform)
    encode.fit(frame)
    return {
        "pipeline": SkPipeline([("encode", encode), ("model", pipe.estimator)]),
        "features": pipe.encoder.feature_names,
        "log_target": pipe.log_target,
    }


def fit_pair(config: DatasetConfig, source: str, cache: Path, fallback: str) -> dict[str, Any]:
    """Fit the chosen candidate once; write the promoted bundle and the joblib file."""
    table = load_table(config.data)
    data = prepare(config, table)
    choice = choose(config, source, fallback)
    print(f"fitting {choice.name} ({choice.source}) on {data.train.size} rows …", flush=True)
    est = cands.build(
        choice.estimator,
        choice.params,
        classifier=config.classifier,
        seed=config.seed,
        members=choice.members,
    )
    est.fit(data.Z[data.train], data.y[data.train])
    log_target = config.target_transform == "log"
    pipe = Pipeline(data.encoder, est, config.classifier, log_target)
    hold = data.encoder.pack(data.features.iloc[data.holdout])
    store = LocalStore(cache / "artifacts")
    doc, assemble = bench_assembler(config, table, data, choice)
    manifest = export_bundle(
        store,
        layout=data.encoder.layout,
        estimator=est,
        classifier=config.classifier,
        log_target=log_target,
        parity_rows=hold,
        reference=pipe.predict(*hold),
        tolerance=config.parity_tolerance,
        doc=doc,
        assemble=assemble,
        explain_rows=data.encoder.pack(data.features.iloc[explain_sample(data.train, config.seed)]),
    )
    promote(store, manifest.name, manifest.version)
    train_frame = data.features.iloc[data.train]
    joblib.dump(baseline_payload(pipe, train_frame), cache / "baseline.joblib")
    cats = {f.name for f in data.encoder.categorical_features}
    rows = to_instances(data.features.iloc[data.holdout], cats)
    pair = {
        "name": manifest.name,
        "version": manifest.version,
        "chosen": choice.name,
        "source": choice.source,
        "rows": rows,
    }
    (cache / PAIR_FILE).write_text(json.dumps(pair))
    return pair


def ensure_models(
    config_path: str, source: str, cache: Path, *, refit: bool = False, fallback: str = "xgboost"
) -> Models:
    """Reuse the cached pair if complete, else fit it (about a minute on 2 cores)."""
    pair_file = cache / PAIR_FILE
    complete = pair_file.is_file() and (cache / "baseline.joblib").is_file()
    if refit or not complete:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        pair = fit_pair(load_config(config_path), source, cache, fallback)
    else:
        pair = json.loads(pair_file.read_text())
        print(f"reusing {pair['name']} {pair['version']} ({pair['chosen']}) from {cache}")
    return Models(
        artifacts=cache / "artifacts",
        joblib_path=cache / "baseline.joblib",
        name=pair["name"],
        version=pair["version"],
        chosen=pair["chosen"],
        rows=pair["rows"],
    )


def baseline_predict(payload: dict[str, Any], rows: list[dict[str, Any]]) -> np.ndarray:
    """The baseline's prediction path, in-process (what its endpoint does per request)."""
    frame = pd.DataFrame(rows, columns=payload["features"])
    raw = payload["pipeline"].predict(frame)
    return np.exp(raw) if payload["log_target"] else np.asarray(raw)
