"""Explain latency on Ames: our numpy TreeSHAP (serving path) vs shap.TreeExplainer.

One run fits the serving bundle's chosen candidate once (the Ames blend: ridge + 2,000
XGBoost trees), exports it with its explainer, and times on the same fitted model and
the same real holdout rows, 1 row and 1,000 rows per call::

    python -m bench.explain_latency [--artifacts ./artifacts] [--repeats 300]
    python -m bench.explain_latency --xgboost n_estimators=500,max_depth=5  # another shape

Paths: ``serving`` = `explain_instances` (validate, pack, ONNX, SHAP, JSON-ready answer);
``ours core`` = SHAP values on the encoded rows only; ``shap`` = shap.TreeExplainer on
the model's tree part (plus numpy linear SHAP for a blend's ridge member, which costs
microseconds). Numbers come from whatever machine runs this; never asserted.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from datetime import date
from typing import Any

import numpy as np

from bench.onnx_latency import (
    BATCH,
    Call,
    Record,
    bench_assembler,
    choose,
    machine,
    summarize,
    to_instances,
)
from bench.report import write_report
from estate.export.exporter import export_bundle
from estate.runtime.explanations import explain_instances
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore
from estate.training import candidates as cands
from estate.training.config import load_config
from estate.training.data import load_table
from estate.training.evaluate import predict_raw
from estate.training.train import prepare


def shap_path(estimator: Any) -> tuple[Any, float, Any]:
    """(shap.TreeExplainer of the tree member, its weight, the linear member or None)."""
    import shap

    members = [("model", 1.0, estimator)]
    if type(estimator).__name__ == "VotingRegressor":
        given = estimator.weights
        w = np.ones(len(estimator.estimators_)) if given is None else np.asarray(given, float)
        members = [
            (n, float(x), e)
            for (n, _), x, e in zip(
                estimator.estimators, w / w.sum(), estimator.estimators_, strict=True
            )
        ]
    trees = [(w, e) for _, w, e in members if type(e).__name__ != "Pipeline"]
    linear = [(w, e) for _, w, e in members if type(e).__name__ == "Pipeline"]
    if len(trees) != 1:
        raise SystemExit("this bench compares one tree model (optionally blended with ridge)")
    weight, tree = trees[0]
    return shap.TreeExplainer(tree), weight, linear[0] if linear else None


def linear_shap(linear: tuple[float, Any] | None, Z: np.ndarray) -> np.ndarray | float:
    if linear is None:
        return 0.0
    weight, pipe = linear
    scaler, ridge = pipe.steps[0][1], pipe.steps[-1][1]
    scale = scaler.scale_ if scaler.scale_ is not None else 1.0
    return np.asarray(weight * ridge.coef_ / scale * (Z - scaler.mean_))


def time_both(call: Call, repeats: int, warmup: int) -> tuple[np.ndarray, float]:
    """Wall nanoseconds per call, and the median CPU microseconds per call: on a shared
    machine the CPU time is what the code costs, the wall time adds waiting for a core."""
    for i in range(warmup):
        call(i)
    gc.collect()
    wall = np.empty(repeats, dtype=np.int64)
    cpu = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        c0, w0 = time.process_time_ns(), time.perf_counter_ns()
        call(i)
        wall[i] = time.perf_counter_ns() - w0
        cpu[i] = time.process_time_ns() - c0
    return wall, round(float(np.median(cpu)) / 1e3, 1)


def load_times(bundle: Any, repeats: int = 3) -> tuple[float, float]:
    """Median seconds to build the serving model (ONNX session + explainer) from the
    exported bundle, and from the same explainer file without its solved tables (as a
    bundle exported before them: the tables are then solved at load), alternating."""
    import io

    from estate.contract.bundle import EXPLAINER_SOLVED_PREFIX

    assert bundle.explainer_bytes is not None, "the chosen model has no explainer"
    with np.load(io.BytesIO(bundle.explainer_bytes), allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if not k.startswith(EXPLAINER_SOLVED_PREFIX)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **old)  # type: ignore[arg-type]
    spec = bundle.manifest.explainer
    update = {"sha256": "", "bytes": len(buffer.getvalue())}
    old_manifest = bundle.manifest.model_copy(update={"explainer": spec.model_copy(update=update)})
    times: dict[str, list[float]] = {"solved": [], "unsolved": []}
    for _ in range(repeats):
        for name, manifest, data in (
            ("solved", bundle.manifest, bundle.explainer_bytes),
            ("unsolved", old_manifest, buffer.getvalue()),
        ):
            gc.collect()
            started = time.perf_counter()
            ServingModel(manifest, bundle.model_bytes, 1, data)
            times[name].append(time.perf_counter() - started)
    return float(np.median(times["solved"])), float(np.median(times["unsolved"]))


def _overrides(text: str) -> dict[str, int | float]:
    """``n_estimators=500,max_depth=5`` → {"n_estimators": 500, "max_depth": 5}."""
    out: dict[str, int | float] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        number = float(value)
        out[key.strip()] = int(number) if number.is_integer() else number
    return out


def table(report: Record) -> str:
    lines = [
        "| path | case | median ms | p99 ms | ms/row | CPU ms/row |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        rows = 1 if r["case"] == "1 row" else BATCH
        lines.append(
            f"| {r['path']} | {r['case']} | {r['median_us'] / 1e3:,.3f} | "
            f"{r['p99_us'] / 1e3:,.3f} | {r['median_us'] / 1e3 / rows:,.4f} | "
            f"{r['cpu_median_us'] / 1e3 / rows:,.4f} |"
        )
    shown = ", ".join(f"{case}: {ratio}x" for case, ratio in report["ratios"].items())
    return "\n".join([*lines, "", f"shap / ours core (median): {shown}"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explain_latency", description=__doc__)
    p.add_argument("--artifacts", default="./artifacts", help="store with the serving bundle")
    p.add_argument("--config", default="configs/ames.toml", help="data-set config")
    p.add_argument("--candidate", default="blend", help="candidate to fit if no bundle exists")
    p.add_argument("--repeats", type=int, default=300, help="timed one-row calls per path")
    p.add_argument("--batch-repeats", type=int, default=3, help="timed 1,000-row calls per path")
    p.add_argument(
        "--xgboost",
        default="",
        metavar="K=V,...",
        help="override the XGBoost member's params (e.g. n_estimators=500,max_depth=5) to "
        "time another tree shape on the same data",
    )
    p.add_argument("--out", default="bench/explain_results.json", help="JSON results file")
    args = p.parse_args(argv)

    config = load_config(args.config)
    table_ = load_table(config.data)
    data = prepare(config, table_)
    choice = choose(config, args.artifacts, args.candidate)
    overrides = _overrides(args.xgboost)
    for name, (estimator, params) in choice.members.items():
        if estimator == "xgboost":
            params.update(overrides)
            if name == choice.name:
                choice.params.update(overrides)
    print(f"fitting {choice.name} ({choice.source}) on {data.train.size} rows …", flush=True)
    est = cands.build(
        choice.estimator, choice.params, classifier=False, seed=config.seed, members=choice.members
    )
    est.fit(data.Z[data.train], data.y[data.train])
    hold = data.encoder.pack(data.features.iloc[data.holdout])
    raw = predict_raw(est, data.encoder.transform_packed(*hold), False)
    sample = data.encoder.pack(data.features.iloc[data.train[:500]])
    doc, assemble = bench_assembler(config, table_, data, choice)
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        manifest = export_bundle(
            LocalStore(tmp),
            layout=data.encoder.layout,
            estimator=est,
            classifier=False,
            log_target=config.target_transform == "log",
            parity_rows=hold,
            reference=np.exp(raw) if config.target_transform == "log" else raw,
            tolerance=config.parity_tolerance,
            doc=doc,
            assemble=assemble,
            explain_rows=sample,
        )
        bundle = read_bundle(LocalStore(tmp), manifest.name, manifest.version)
    load_seconds, unsolved_seconds = load_times(bundle)
    model = ServingModel(bundle.manifest, bundle.model_bytes, 1, bundle.explainer_bytes)
    explainer = model.explainer
    assert explainer is not None, "the chosen model has no explainer"

    frame = data.features.iloc[data.holdout]
    n = len(frame)
    take = np.resize(np.arange(n), BATCH)
    instances = to_instances(frame, {f.name for f in data.encoder.categorical_features})
    many = [instances[i] for i in take]
    Z = data.Z[data.holdout].astype(np.float64)
    Zb = Z[take]
    tree_explainer, weight, linear = shap_path(est)
    Z32, Zb32 = Z.astype(np.float32), Zb.astype(np.float32)

    def theirs(rows: np.ndarray) -> np.ndarray:
        return np.asarray(weight * tree_explainer.shap_values(rows) + linear_shap(linear, rows))

    agreement = float(np.abs(explainer.shap_encoded(Zb) - theirs(Zb32)).max())
    calls: dict[str, tuple[Call, Call]] = {
        "serving (explain_instances)": (
            lambda i: explain_instances(model, [instances[i % n]]),
            lambda i: explain_instances(model, many),
        ),
        "ours core (numpy TreeSHAP)": (
            lambda i: explainer.shap_encoded(Z[i % n : i % n + 1]),
            lambda i: explainer.shap_encoded(Zb),
        ),
        "shap.TreeExplainer": (
            lambda i: theirs(Z32[i % n : i % n + 1]),
            lambda i: theirs(Zb32),
        ),
    }
    results = []
    for path, (one, batch) in calls.items():
        for case, rows, call, repeats, warmup in (
            ("1 row", 1, one, args.repeats, 10),
            (f"{BATCH} rows", BATCH, batch, args.batch_repeats, 1),
        ):
            wall, cpu = time_both(call, repeats, warmup)
            results.append(summarize(path, case, rows, wall) | {"cpu_median_us": cpu})
    med = {(r["path"], r["case"]): r["median_us"] for r in results}
    ratios = {
        c: round(med[("shap.TreeExplainer", c)] / med[("ours core (numpy TreeSHAP)", c)], 2)
        for c in ("1 row", f"{BATCH} rows")
    }
    spec = bundle.manifest.explainer
    report = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "model": {
            "chosen": choice.name,
            "xgboost_overrides": overrides,
            "source": choice.source,
            "explainer": spec.model_dump(exclude={"global_importance"}) if spec else None,
            "tree_paths": int(explainer.paths.value.size) if explainer.paths else 0,
            "max_unique_features_per_path": int(explainer.paths.length.max())
            if explainer.paths
            else 0,
        },
        "model_load_seconds": round(load_seconds, 3),
        "model_load_seconds_unsolved_file": round(unsolved_seconds, 3),
        "explainer_file_bytes": len(bundle.explainer_bytes or b""),
        "max_abs_diff_vs_shap_1000_rows": agreement,
        "results": results,
        "ratios": ratios,
    }
    print(table(report))
    print(f"max |ours - shap| over {BATCH} rows x {Z.shape[1]} columns: {agreement:.2e}")
    print(
        f"model load (ONNX session + explainer tables), median of 3: {load_seconds:.3f} s; "
        f"the same file without its solved tables (solved at load): {unsolved_seconds:.3f} s"
    )
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
