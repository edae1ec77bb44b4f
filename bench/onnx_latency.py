"""ONNX (serving path) vs the scikit-learn pipeline it was exported from: latency on Ames.

One run fits the bundle's chosen candidate once, exports it to a temporary store and
times both sides on the same fitted object and the same real holdout rows::

    python -m bench.onnx_latency [--artifacts ./artifacts] [--repeats 2000]

Numbers come from whatever machine runs this; they are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report import write_report
from estate.contract.bundle import InputSchema, Lineage, Manifest, new_version, normalize_category
from estate.contract.errors import NotFoundError
from estate.export.exporter import ExportFacts, export_bundle
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore, open_store
from estate.training import candidates as cands
from estate.training.config import DatasetConfig, load_config
from estate.training.data import Table, load_table
from estate.training.encoder import TabularEncoder
from estate.training.evaluate import predict_raw, selection_metric
from estate.training.manifest import assemble_manifest
from estate.training.train import Prepared, prepare

BATCH = 1000
Call = Callable[[int], object]
Paths = Mapping[str, tuple[Call, Call]]  # path → (one-row call, batch call)
Record = dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """Which candidate to fit, and where that choice came from."""

    name: str
    estimator: str
    params: dict[str, Any]
    members: dict[str, tuple[str, dict[str, Any]]]
    source: str


@dataclass(frozen=True)
class Pipeline:
    """The fitted scikit-learn side; predicts in target units like the ONNX graph."""

    encoder: TabularEncoder
    estimator: Any
    classifier: bool
    log_target: bool

    def predict(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Target-unit predictions from the packed arrays the ONNX graph also gets."""
        Z = self.encoder.transform_packed(numeric, categorical)
        raw = predict_raw(self.estimator, Z, self.classifier)
        return np.exp(raw) if self.log_target else raw


def choose(config: DatasetConfig, artifacts: str, fallback: str) -> Choice:
    """The serving bundle's chosen candidate, so the bench times what is deployed."""
    members = {c.name: (c.estimator, dict(c.params)) for c in config.candidates}
    try:
        manifest = read_bundle(open_store(artifacts), config.name).manifest
    except NotFoundError:
        if fallback not in members:
            sys.exit(f"error: no bundle in {artifacts} and no candidate {fallback!r} in config")
        est, params = members[fallback]
        return Choice(fallback, est, params, members, "config (no bundle found)")
    members.update({c.name: (c.estimator, dict(c.params)) for c in manifest.candidates})
    estimator = members[manifest.chosen][0] if manifest.chosen in members else manifest.chosen
    source = f"bundle {manifest.version}"
    return Choice(manifest.chosen, estimator, dict(manifest.chosen_params), members, source)


def bench_assembler(
    config: DatasetConfig, table: Table, data: Prepared, choice: Choice
) -> tuple[str, Callable[[ExportFacts], Manifest]]:
    """(graph doc, assemble): the manifest training would write; scores are irrelevant to
    latency, so there are no candidates, interval or drift reference."""
    enc, log_target = data.encoder, config.target_transform == "log"
    version = new_version(salt=b"bench")
    lineage = Lineage(
        source_uri=table.uri,
        sha256=table.sha256,
        bytes=table.size,
        rows=len(table.frame),
        rows_used=len(data.y),
        columns=table.frame.shape[1],
    )

    def assemble(export: ExportFacts) -> Manifest:
        return assemble_manifest(
            config,
            version=version,
            schema=InputSchema(
                numeric=enc.numeric_features,
                categorical=enc.categorical_features,
                derived=enc.derived_features or None,  # as training writes it
            ),
            candidates=[],
            chosen=choice.name,
            chosen_params=choice.params,
            selection_metric=selection_metric(config.classifier, log_target)[0],
            interval=None,
            threshold=None,
            drift=None,
            training={"bench": True},
            lineage=lineage,
            export=export,
        )

    return f"estate-advisor {config.name} {version}", assemble


def fit_and_export(
    config: DatasetConfig, table: Table, data: Prepared, choice: Choice, threads: int
) -> tuple[Pipeline, ServingModel]:
    """Fit once, export that same object (parity-checked) and load it as serving does."""
    kind, params, members = choice.estimator, choice.params, choice.members
    est = cands.build(kind, params, classifier=config.classifier, seed=config.seed, members=members)
    est.fit(data.Z[data.train], data.y[data.train])
    log_target = config.target_transform == "log"
    pipe = Pipeline(data.encoder, est, config.classifier, log_target)
    hold = data.encoder.pack(data.features.iloc[data.holdout])
    doc, assemble = bench_assembler(config, table, data, choice)
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        store, ref = LocalStore(tmp), pipe.predict(*hold)
        manifest = export_bundle(
            store,
            layout=data.encoder.layout,
            estimator=est,
            classifier=config.classifier,
            log_target=log_target,
            parity_rows=hold,
            reference=ref,
            tolerance=config.parity_tolerance,
            doc=doc,
            assemble=assemble,
        )
        bundle = read_bundle(store, manifest.name, manifest.version)
    return pipe, ServingModel(bundle.manifest, bundle.model_bytes, threads)


def to_instances(frame: pd.DataFrame, categorical: set[str]) -> list[Record]:
    """JSON-like request instances: missing numbers omitted, categories as canonical text."""
    out: list[Record] = []
    for record in frame.to_dict(orient="records"):
        row: Record = {}
        for key, value in record.items():
            value = value.item() if isinstance(value, np.generic) else value
            if str(key) in categorical:
                row[str(key)] = normalize_category(value)
            elif not pd.isna(value):
                row[str(key)] = value
        out.append(row)
    return out


def time_calls(call: Call, repeats: int, warmup: int) -> np.ndarray:
    """Nanoseconds per call of call(i), i = 0..repeats-1, after `warmup` untimed calls."""
    for i in range(warmup):
        call(i)
    gc.collect()
    out = np.empty(repeats, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(repeats):
        start = clock()
        call(i)
        out[i] = clock() - start
    return out


def summarize(path: str, case: str, rows: int, ns: np.ndarray) -> Record:
    """Median for the typical call, p99 for the tail a client actually sees."""
    median = float(np.median(ns)) / 1e3
    return {
        "path": path,
        "case": case,
        "median_us": round(median, 1),
        "p99_us": round(float(np.percentile(ns, 99)) / 1e3, 1),
        "rows_per_s": round(rows / (median / 1e6), 1),
        "repeats": int(ns.size),
    }


def build_calls(pipe: Pipeline, model: ServingModel, frame: pd.DataFrame) -> Paths:
    """Per path: (one-row call cycling through the rows, the 1,000-row batch call)."""
    n = len(frame)
    numeric, categorical = pipe.encoder.pack(frame)
    singles = [(numeric[i : i + 1], categorical[i : i + 1]) for i in range(n)]
    take = np.resize(np.arange(n), BATCH)  # holdout rows cycled up to 1,000
    batch = (numeric[take], categorical[take])
    cats = {f.name for f in pipe.encoder.categorical_features}
    instances = to_instances(frame, cats)
    many = [instances[i] for i in take]
    model.adapter.validate_python(many)  # the instances must pass serving validation
    check = np.array([p.value for p in model.predict(many)])
    np.testing.assert_allclose(check, pipe.predict(*batch), rtol=1e-4)
    return {
        "onnx": (lambda i: model.run(*singles[i % n]), lambda i: model.run(*batch)),
        "sklearn": (lambda i: pipe.predict(*singles[i % n]), lambda i: pipe.predict(*batch)),
        "serving": (lambda i: model.predict([instances[i % n]]), lambda i: model.predict(many)),
        "serving+validate": (
            lambda i: model.predict(model.adapter.validate_python([instances[i % n]])),
            lambda i: model.predict(model.adapter.validate_python(many)),
        ),
    }


def run_bench(calls: Paths, repeats: int, batch_repeats: int) -> list[Record]:
    """Paths run one after another, each warmed up first, so they do not share a core."""
    results = []
    for path, (one, batch) in calls.items():
        results.append(summarize(path, "1 row", 1, time_calls(one, repeats, warmup=50)))
        results.append(summarize(path, f"{BATCH} rows", BATCH, time_calls(batch, batch_repeats, 2)))
    return results


def ratios(results: list[Record]) -> dict[str, float]:
    """sklearn median / onnx median per case: above 1 means ONNX is faster."""
    med = {(r["path"], r["case"]): r["median_us"] for r in results}
    cases = sorted({r["case"] for r in results}, key=len)
    return {c: round(med[("sklearn", c)] / med[("onnx", c)], 2) for c in cases}


def machine() -> Record:
    """Where the numbers come from: they only mean something next to this."""
    info = Path("/proc/cpuinfo")
    found = re.search(r"^model name\s*:\s*(.+)$", info.read_text() if info.is_file() else "", re.M)
    cpu = found.group(1).strip() if found else platform.processor() or platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def table(report: Record) -> str:
    """A Markdown table, so the output pastes straight into bench/README.md."""
    lines = ["| path | case | median µs | p99 µs | rows/s |", "|---|---|---:|---:|---:|"]
    for r in report["results"]:
        lines.append(
            f"| {r['path']} | {r['case']} | {r['median_us']:,.1f} | {r['p99_us']:,.1f} "
            f"| {r['rows_per_s']:,.0f} |"
        )
    shown = ", ".join(f"{case}: {ratio}x" for case, ratio in report["ratios"].items())
    return "\n".join([*lines, "", f"sklearn / onnx (median): {shown}"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults match `make bench`: the repo's artifacts and the Ames config."""
    p = argparse.ArgumentParser(
        prog="python -m bench.onnx_latency",
        description="Time the exported ONNX graph (onnxruntime), the scikit-learn pipeline it "
        "came from, and the in-process serving path on the same fitted model and Ames rows.",
    )
    p.add_argument("--artifacts", default="./artifacts", help="store with the serving bundle")
    p.add_argument("--config", default="configs/ames.toml", help="data-set config")
    p.add_argument("--candidate", default="xgboost", help="candidate to fit if no bundle exists")
    p.add_argument("--repeats", type=int, default=2000, help="timed one-row calls per path")
    p.add_argument("--batch-repeats", type=int, default=15, help="timed 1,000-row calls per path")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (serving: 1)")
    p.add_argument("--out", default="bench/results.json", help="JSON results file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit once, time every path, print the table and write the JSON report."""
    args = parse_args(argv)
    config = load_config(args.config)
    table_ = load_table(config.data)
    data = prepare(config, table_)
    choice = choose(config, args.artifacts, args.candidate)
    print(f"fitting {choice.name} ({choice.source}) on {data.train.size} rows …", flush=True)
    pipe, model = fit_and_export(config, table_, data, choice, args.threads)
    calls = build_calls(pipe, model, data.features.iloc[data.holdout])
    results = run_bench(calls, args.repeats, args.batch_repeats)
    report = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "model": {
            "name": config.name,
            "chosen": choice.name,
            "source": choice.source,
            "bytes": model.manifest.model_file.bytes,
            "onnx_threads": args.threads,
        },
        "results": results,
        "ratios": ratios(results),
    }
    print(table(report))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
