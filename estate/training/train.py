"""Training job: data → candidates scored on shared K folds → best refit → ONNX bundle.

Runs the same as a local process or as a Vertex AI custom job::

    estate train --config configs/ames.toml
    estate train --config cfg.toml --data gs://b/data.parquet --store gs://b/estate
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from estate.contract.bundle import (
    CandidateResult,
    CategoricalFeature,
    ConformalInterval,
    DecisionThreshold,
    DerivedFeature,
    DriftReference,
    InputSchema,
    Lineage,
    Manifest,
    NumericFeature,
    PredictCost,
    new_version,
    normalize_category,
)
from estate.contract.cells import FLOAT32_MAX
from estate.contract.errors import ConfigError
from estate.export.scale_graph import ScaleHead
from estate.runtime.drift import build_reference
from estate.storage.store import open_store
from estate.training import adaptive
from estate.training import candidates as cands
from estate.training.card import CardFacts, attach_card, coverage_by_fifth, sale_period
from estate.training.config import DatasetConfig
from estate.training.data import Table, check_columns, load_table
from estate.training.encoder import TabularEncoder
from estate.training.evaluate import (
    best_f1_threshold,
    classification_metrics,
    conformal_quantile,
    fold_indices,
    out_of_fold,
    predict_raw,
    regression_metrics,
    selection_metric,
)
from estate.training.manifest import assemble_manifest


class Progress:
    """Timestamped progress lines on stdout (Vertex AI and Cloud Logging capture them)."""

    def __init__(self, quiet: bool = False) -> None:
        self.start = time.perf_counter()
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", flush=True)


@dataclass
class Prepared:
    """The data split once, encoded once, shared by every candidate."""

    features: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    holdout: np.ndarray
    encoder: TabularEncoder
    Z: np.ndarray
    rows_total: int
    folds: list[np.ndarray] = field(default_factory=list)
    #: Every row used, raw columns and target included (for the comparables table).
    rows: pd.DataFrame | None = None


def prepare(config: DatasetConfig, table: Table) -> Prepared:
    """Drop, filter, split off the target, split train/holdout and fit the encoder."""
    frame = table.frame
    rows_total = len(frame)
    if config.target not in frame.columns:
        raise ConfigError(
            f"Target column {config.target!r} is not in {table.uri}; columns: {list(frame.columns)}"
        )
    named = set(config.categorical) | (
        set(config.log1p) if isinstance(config.log1p, list) else set()
    )
    named |= set(config.features) | set(config.ordinal)
    named -= set(config.derived)  # computed, not read: the encoder checks their inputs
    if config.period is not None:
        named |= {c for c in (config.period.year, config.period.month) if c}
    absent = sorted(named - set(frame.columns))
    if absent:
        raise ConfigError(
            f"The config names columns that are not in {table.uri}: {absent}; "
            f"columns: {list(frame.columns)}"
        )
    # Before the row filter, which may compare a column that holds text by mistake.
    # Dropped columns (ids) and a classifier's labels may hold anything.
    free = set(config.categorical) | set(config.drop_columns) | set(config.ordinal)
    check_columns(frame, table.uri, free | ({config.target} if config.classifier else set()))
    if config.row_filter:
        try:
            frame = frame.query(config.row_filter)
        except Exception as exc:
            raise ConfigError(f"row_filter {config.row_filter!r} failed: {exc}") from exc
    frame = frame[frame[config.target].notna()]
    data_rows = frame.index.to_numpy() + 1  # data-row numbers in the file, for errors
    frame = frame.reset_index(drop=True)
    rows_used = frame.copy() if config.comparables is not None else None
    if len(frame) < config.folds * 10:
        raise ConfigError(
            f"Only {len(frame)} usable rows in {table.uri}; need at least {config.folds * 10}."
        )
    target = frame.pop(config.target)
    features = frame.drop(columns=[c for c in config.drop_columns if c in frame.columns])
    if config.classifier:
        labels = target.map(normalize_category)
        positive = normalize_category(config.positive_label)
        if positive not in set(labels):
            raise ConfigError(
                f"positive_label {config.positive_label!r} never occurs in {config.target!r}."
            )
        y = (labels == positive).to_numpy(dtype=np.float64)
    else:
        y = target_values(target, config, table.uri, data_rows)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))
    n_hold = round(len(y) * config.holdout_fraction)
    holdout, train = np.sort(order[:n_hold]), np.sort(order[n_hold:])
    log1p: str | list[str] = config.log1p
    encoder = TabularEncoder(
        categorical=config.categorical,
        log1p=log1p,
        ordinal=config.ordinal_scales(),
        derived=config.derived,
    )
    try:
        encoder.fit(features.iloc[train])
    except ConfigError as exc:
        raise ConfigError(f"{table.uri}: {exc}") from None
    Z = encoder.transform(features)
    prepared = Prepared(features, y, train, holdout, encoder, Z, rows_total, rows=rows_used)
    prepared.folds = fold_indices(
        train.size, y[train], config.folds, config.seed, config.classifier
    )
    return prepared


def target_values(
    target: pd.Series, config: DatasetConfig, uri: str, data_rows: np.ndarray
) -> np.ndarray:
    """The regression target on the model's scale; refuses text, ±inf, float32 overflow
    and (for a log target) values <= 0, naming the first bad row."""
    y = pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64)
    where = f"{uri}: column {config.target!r} (the regression target)"
    bad = ~(np.abs(y) <= FLOAT32_MAX)  # NaN (text), ±inf and overflow all fail
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"{where}, data row {data_rows[i]}: {str(target.iloc[i])[:80]!r} is not a finite "
            f"number within ±{FLOAT32_MAX:.3g}; fix the cell, or remove the row."
        )
    if config.target_transform == "log":
        bad = y <= 0
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(
                f"{where}, data row {data_rows[i]}: {y[i]:g} is not positive, and "
                "target_transform='log' needs a positive target; fix the row or drop the "
                "transform."
            )
        y = np.log(y)
    return y


@dataclass
class Scored:
    result: CandidateResult
    oof: np.ndarray
    holdout_pred: np.ndarray
    fitted: Any = None


def metrics_for(config: DatasetConfig, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if config.classifier:
        return classification_metrics(y, pred)
    return regression_metrics(y, pred, config.target_transform == "log")


def score_candidates(config: DatasetConfig, data: Prepared, say: Progress) -> dict[str, Scored]:
    """K-fold CV on the same folds for every candidate, then a fit on all training rows."""
    metric, _ = selection_metric(config.classifier, config.target_transform == "log")
    Ztr, ytr = data.Z[data.train], data.y[data.train]
    Zho, yho = data.Z[data.holdout], data.y[data.holdout]
    specs = {c.name: (c.estimator, c.params) for c in config.candidates}
    scored: dict[str, Scored] = {}
    cost_rows = data.encoder.pack(data.features.iloc[data.train[:1000]])
    ordered = sorted(config.candidates, key=lambda c: c.estimator == "blend")
    for cand in ordered:
        t0 = time.perf_counter()

        def make(c: Any = cand) -> Any:
            return cands.build(
                c.estimator, c.params, classifier=config.classifier, seed=config.seed, members=specs
            )

        make()  # fail fast on a bad estimator name or params
        if cand.estimator == "blend":
            # A voting ensemble's prediction is the weighted mean of its members', so its
            # out-of-fold and holdout predictions follow from theirs without refitting.
            members = list(cand.params["members"])
            missing = [m for m in members if m not in scored]
            if missing:
                raise ConfigError(f"Blend {cand.name!r} names unknown candidates {missing}.")
            params = dict(cand.params)
            if params.get("weights") == cands.OOF_WEIGHTS:
                params["weights"] = cands.oof_weights([scored[m].oof for m in members], ytr)
                say(f"{cand.name}: weights fitted on out-of-fold predictions {params['weights']}")
            weights = np.asarray(params.get("weights") or [1.0] * len(members), dtype=float)
            weights = weights / weights.sum()
            oof = sum(w * scored[m].oof for w, m in zip(weights, members, strict=True))
            hold = sum(w * scored[m].holdout_pred for w, m in zip(weights, members, strict=True))
            oof, hold = np.asarray(oof), np.asarray(hold)
            fold_scores = [metrics_for(config, ytr[f], oof[f])[metric] for f in data.folds]
            fitted = None
            cost = blend_cost([scored[m].result.cost for m in members])
        else:
            params = cand.params
            oof = np.empty_like(ytr)
            fold_scores = []
            for i, test, pred in out_of_fold(make, Ztr, ytr, data.folds, config.classifier):
                oof[test] = pred
                fold_scores.append(metrics_for(config, ytr[test], pred)[metric])
                say(f"{cand.name}: fold {i + 1}/{len(data.folds)} {metric}={fold_scores[-1]:.4f}")
            fitted = make().fit(Ztr, ytr)
            hold = predict_raw(fitted, Zho, config.classifier)
            cost = candidate_cost(config, data, fitted, cost_rows)
        result = CandidateResult(
            name=cand.name,
            estimator=cand.estimator,
            params=params,
            cv_metrics=metrics_for(config, ytr, oof),
            cv_fold_scores=fold_scores,
            holdout_metrics=metrics_for(config, yho, hold),
            fit_seconds=round(time.perf_counter() - t0, 3),
            cost=cost,
        )
        shown = (
            f"; predict {cost.onnx_ms_per_1000_rows:.1f} ms/1,000 rows, {cost.trees} trees, "
            f"{cost.shap_paths} SHAP paths"
            if cost
            else ""
        )
        say(
            f"{cand.name}: CV {metric}={result.cv_metrics[metric]:.4f} "
            f"holdout {metric}={result.holdout_metrics[metric]:.4f} "
            f"({result.fit_seconds:.1f}s{shown})"
        )
        scored[cand.name] = Scored(result, oof, hold, fitted)
    return scored


def candidate_cost(
    config: DatasetConfig, data: Prepared, fitted: Any, rows: tuple[np.ndarray, np.ndarray]
) -> PredictCost | None:
    """The fitted candidate's predict cost (`estate.export.cost`); None if it cannot export."""
    from estate.contract.errors import ExportError
    from estate.export.cost import measure_cost

    try:
        return measure_cost(
            data.encoder.layout,
            fitted,
            rows,
            classifier=config.classifier,
            log_target=config.target_transform == "log",
        )
    except ExportError:
        return None  # the export proper will say why, if this candidate wins


def blend_cost(costs: list[PredictCost | None]) -> PredictCost | None:
    """A blend's cost: its members' added (None when one is unknown)."""
    from estate.export.cost import added

    known = [c for c in costs if c is not None]
    return added(known) if len(known) == len(costs) else None


@dataclass
class Choice:
    """The best candidate by CV, fitted on every training row."""

    best: Scored
    params: dict[str, Any]
    fitted: Any
    metric: str


@dataclass
class Calibration:
    """The best model on the holdout, and the interval (regression) or decision threshold
    (classification) calibrated on its out-of-fold predictions."""

    hold_raw: np.ndarray
    interval: ConformalInterval | None = None
    threshold: DecisionThreshold | None = None
    inside: np.ndarray | None = None  # regression: holdout rows the served interval covers
    scale: ScaleHead | None = None  # adaptive interval: the graph's scale head
    hold_scale: np.ndarray | None = None  # its scale on the holdout rows (parity reference)


def train(
    config: DatasetConfig,
    data_uri: str,
    output: str,
    *,
    quiet: bool = False,
    allow_schema_change: bool = False,
) -> Manifest:
    """The whole job; returns the manifest of the bundle it wrote (promoted if it passed)."""
    say = Progress(quiet)
    table, data = load_and_prepare(config, data_uri, say)
    scored = score_candidates(config, data, say)
    choice = choose_and_refit(config, data, scored, say)
    calibration = calibrate(config, data, choice, say)
    return export_and_gate(
        config, table, data, scored, choice, calibration, output, say, allow_schema_change
    )


def load_and_prepare(config: DatasetConfig, data_uri: str, say: Progress) -> tuple[Table, Prepared]:
    """Read the data and prepare it once for every candidate."""
    say(f"reading {data_uri}")
    table = load_table(data_uri)
    data = prepare(config, table)
    enc = data.encoder
    say(
        f"{len(data.y)} rows ({data.train.size} train, {data.holdout.size} holdout), "
        f"{len(enc.numeric_features)} numeric + {len(enc.categorical_features)} categorical "
        f"features → {data.Z.shape[1]} columns; {config.folds}-fold CV"
    )
    return table, data


def cheapest_near_best(
    ranking: list[Scored], metric: str, higher: bool, within: float, say: Progress
) -> Scored:
    """The best by CV, or (``cheaper_within`` > 0) the cheapest to predict among the
    candidates whose CV is within that fraction of the best's."""
    best = ranking[0]
    if within <= 0 or best.result.cost is None:
        return best
    top = best.result.cv_metrics[metric]
    bound = top * (1 - within) if higher else top * (1 + within)
    near = [
        s
        for s in ranking
        if s.result.cost is not None
        and (
            s.result.cv_metrics[metric] >= bound if higher else s.result.cv_metrics[metric] <= bound
        )
    ]
    chosen = min(near, key=lambda s: s.result.cost.onnx_ms_per_1000_rows if s.result.cost else 0)
    if chosen is not best:
        say(
            f"{chosen.result.name} is within {within:.1%} of {best.result.name}'s CV {metric} "
            f"and cheaper to predict: choosing it (cheaper_within)"
        )
    return chosen


def choose_and_refit(
    config: DatasetConfig, data: Prepared, scored: dict[str, Scored], say: Progress
) -> Choice:
    """The best candidate by CV, refit on all training rows unless scoring already did."""
    metric, higher = selection_metric(config.classifier, config.target_transform == "log")
    ranking = sorted(scored.values(), key=lambda s: s.result.cv_metrics[metric], reverse=higher)
    best = cheapest_near_best(ranking, metric, higher, config.cheaper_within, say)
    say(f"best: {best.result.name} (CV {metric}={best.result.cv_metrics[metric]:.4f}); refitting")
    spec = next(c for c in config.candidates if c.name == best.result.name)
    params = best.result.params  # a blend's fitted weights (params.weights = "oof")
    fitted = best.fitted
    if fitted is None:
        specs = {c.name: (c.estimator, c.params) for c in config.candidates}
        fitted = cands.build(
            spec.estimator,
            params,
            classifier=config.classifier,
            seed=config.seed,
            members=specs,
        ).fit(data.Z[data.train], data.y[data.train])
    return Choice(best, params, fitted, metric)


def calibrate(config: DatasetConfig, data: Prepared, choice: Choice, say: Progress) -> Calibration:
    """Classification: the max-F1 decision threshold; regression: the conformal interval."""
    yho = data.y[data.holdout]
    hold_raw = predict_raw(choice.fitted, data.Z[data.holdout], config.classifier)
    ytr, oof = data.y[data.train], choice.best.oof
    if config.classifier:
        cut = best_f1_threshold(ytr, oof)
        threshold = DecisionThreshold(
            value=cut,
            criterion="max F1 on out-of-fold predictions",
            holdout_metrics=classification_metrics(yho, hold_raw, cut),
        )
        shown = ", ".join(f"{k} {v:.3f}" for k, v in threshold.holdout_metrics.items())
        say(f"decision threshold {cut:.3f}: holdout {shown}")
        return Calibration(hold_raw, threshold=threshold)
    return calibrate_interval(config, data, hold_raw, oof, say)


def calibrate_interval(
    config: DatasetConfig, data: Prepared, hold_raw: np.ndarray, oof: np.ndarray, say: Progress
) -> Calibration:
    """The fixed band and the normalized one (`estate.training.adaptive`), both calibrated
    on the out-of-fold predictions and compared on the holdout; the config's
    ``interval_method`` is served."""
    level, log_target = config.interval_level, config.target_transform == "log"
    ytr, yho = data.y[data.train], data.y[data.holdout]
    q = conformal_quantile(ytr, oof, level)
    fixed = adaptive.Band("cross_conformal", hold_raw - q, hold_raw + q)
    fit = adaptive.fit_normalized(data.Z[data.train], ytr, oof, data.folds, level, config.seed)
    hold_scale = fit.head.predict(data.Z[data.holdout])
    half = fit.quantile * hold_scale
    normalized = adaptive.Band("normalized_conformal", hold_raw - half, hold_raw + half)
    served = normalized if config.interval_method == "normalized_conformal" else fixed
    table = adaptive.compare([fixed, normalized], served.method, yho, hold_raw, log_target)
    by_method = {row.method: row for row in table}
    spec = None
    if served is normalized:
        row = by_method[normalized.method]
        spec = adaptive.adaptive_spec(fit, int(ytr.size), row.coverage, row.median_width)
    interval = ConformalInterval(
        level=level,
        quantile=q,
        calibration_rows=int(ytr.size),
        holdout_coverage=by_method[fixed.method].coverage,
        holdout_median_width=by_method[fixed.method].median_width,
        adaptive=spec,
        comparison=table,
    )
    for row in table:
        fifths = " ".join(f"{f.coverage:.0%}" for f in row.by_fifth)
        say(
            f"{level:.0%} {row.method}{' (served)' if row.served else ''}: holdout coverage "
            f"{row.coverage:.1%} (by fifth of prediction {fifths}), median relative width "
            f"{row.median_relative_width:.1%}"
        )
    return Calibration(
        hold_raw,
        interval=interval,
        inside=adaptive.covered(served, yho),
        scale=fit.head if spec is not None else None,
        hold_scale=hold_scale if spec is not None else None,
    )


def output_units(config: DatasetConfig, raw: np.ndarray) -> np.ndarray:
    """Raw-scale predictions in the output's units (prices, not log prices)."""
    log_target = config.target_transform == "log" and not config.classifier
    return np.exp(raw) if log_target else raw


def drift_reference(config: DatasetConfig, data: Prepared, choice: Choice) -> DriftReference:
    """Training rows as serving packs them, out-of-fold predictions in output units."""
    enc = data.encoder
    return build_reference(
        enc.numeric_features,
        enc.categorical_features,
        *enc.pack(data.features.iloc[data.train]),
        output_units(config, choice.best.oof),
    )


def training_summary(config: DatasetConfig, data: Prepared, say: Progress) -> dict[str, Any]:
    """The manifest's ``training`` record: split sizes, folds, seed, time so far."""
    return {
        "rows_train": int(data.train.size),
        "rows_holdout": int(data.holdout.size),
        "folds": config.folds,
        "seed": config.seed,
        "duration_seconds": round(time.perf_counter() - say.start, 2),
    }


_Feature = TypeVar("_Feature", NumericFeature, CategoricalFeature, DerivedFeature)


def documented(feature: _Feature, config: DatasetConfig) -> _Feature:
    """`feature` with the label, description and unit the config gives it (if any)."""
    doc = config.features.get(feature.name)
    if doc is None:
        return feature
    return feature.model_copy(
        update={"label": doc.label, "description": doc.description, "unit": doc.unit}
    )


def card_facts(config: DatasetConfig, data: Prepared, calibration: Calibration) -> CardFacts:
    """The model card's own facts: period, target spread, coverage by fifth of prediction."""
    period = sale_period(config, data.features)
    if config.classifier:
        return CardFacts(period, None, float(data.y.mean()), None)
    target = output_units(config, data.y)
    fifths = None
    if calibration.inside is not None:
        predicted = output_units(config, calibration.hold_raw)
        fifths = coverage_by_fifth(predicted, calibration.inside)
    return CardFacts(period, (float(target.min()), float(target.max())), None, fifths)


def export_and_gate(
    config: DatasetConfig,
    table: Table,
    data: Prepared,
    scored: dict[str, Scored],
    choice: Choice,
    calibration: Calibration,
    output: str,
    say: Progress,
    allow_schema_change: bool,
) -> Manifest:
    """Snapshot the data, export the bundle (parity-checked), run the gates, promote or hold."""
    from estate.export.exporter import ExportFacts, export_bundle
    from estate.training import gates, lineage

    enc = data.encoder
    version = new_version(salt=table.sha256.encode())
    numeric, categorical = enc.pack(data.features.iloc[data.holdout])
    drift = drift_reference(config, data, choice)
    training = training_summary(config, data, say)
    store = open_store(output)
    snapshot_uri = lineage.snapshot(store, table)
    say(f"data snapshot: {snapshot_uri}")
    source = Lineage(
        source_uri=table.uri,
        sha256=table.sha256,
        bytes=table.size,
        rows=data.rows_total,
        rows_used=len(data.y),
        columns=int(table.frame.shape[1]),
        row_filter=config.row_filter,
        snapshot_uri=snapshot_uri,
    )
    schema = InputSchema(
        numeric=[documented(f, config) for f in enc.numeric_features],
        categorical=[documented(f, config) for f in enc.categorical_features],
        dropped=[c for c in config.drop_columns if c in table.frame.columns],
        derived=[documented(f, config) for f in enc.derived_features] or None,
    )

    def assemble(export: ExportFacts) -> Manifest:
        return assemble_manifest(
            config,
            version=version,
            schema=schema,
            candidates=[s.result for s in scored.values()],
            chosen=choice.best.result.name,
            chosen_params=choice.params,
            selection_metric=choice.metric,
            interval=calibration.interval,
            threshold=calibration.threshold,
            drift=drift,
            training=training,
            lineage=source,
            export=export,
        )

    facts = card_facts(config, data, calibration)
    yho = data.y[data.holdout]
    decide = gates.recorder(store, config, numeric, categorical, yho, allow_schema_change)
    say("exporting ONNX graph and checking parity on holdout rows")
    manifest = export_bundle(
        store,
        layout=enc.layout,
        estimator=choice.fitted,
        classifier=config.classifier,
        log_target=config.target_transform == "log",
        parity_rows=(numeric, categorical),
        reference=output_units(config, calibration.hold_raw),
        tolerance=config.parity_tolerance,
        abs_tolerance=config.parity_abs_tolerance,
        doc=f"estate-advisor {config.name} {version}",
        assemble=assemble,
        decide=decide,
        card=lambda finished: attach_card(finished, config, facts),
        comparables=comparables_table(config, data),
        explain_rows=enc.pack(data.features.iloc[explain_sample(data.train, config.seed)]),
        scale=(
            (calibration.scale, calibration.hold_scale)
            if calibration.scale is not None and calibration.hold_scale is not None
            else None
        ),
    )
    say(
        f"wrote {store.uri}/models/{manifest.name}/{manifest.version} "
        f"(parity max abs diff {manifest.parity.max_abs_diff:.1e}, "
        f"max rel diff {manifest.parity.max_rel_diff:.2e}, "
        f"{manifest.model_file.bytes / 1e6:.1f} MB)"
    )
    if manifest.promotion is not None:
        for line in gates.report(manifest.promotion):
            say(line)
    say(gates.apply_decision(store, manifest))
    return manifest


def comparables_table(
    config: DatasetConfig, data: Prepared
) -> Callable[[Manifest], tuple[Manifest, bytes]] | None:
    """The export's hook that writes ``comparables.npz`` (None: the config declares none)."""
    if config.comparables is None or data.rows is None:
        return None
    from estate.training.comparables import build_table

    rows = data.rows
    packed = data.encoder.pack(data.features)
    return lambda finished: build_table(finished, config, rows, packed)


def explain_sample(train: np.ndarray, seed: int, size: int = 500) -> np.ndarray:
    """Training rows the explainer's global importance is averaged over."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=min(size, train.size), replace=False))
