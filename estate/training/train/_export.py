"""Step 4: the bundle's facts (schema, lineage, drift reference, card, comparables), the
parity-checked export, the gates, and the promotion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from estate.contract.bundle import (
    CategoricalFeature,
    DerivedFeature,
    DriftReference,
    InputSchema,
    Lineage,
    Manifest,
    NumericFeature,
    new_version,
)
from estate.runtime.drift import build_reference
from estate.storage.store import open_store
from estate.training.card import CardFacts, attach_card, coverage_by_fifth, sale_period
from estate.training.config import DatasetConfig
from estate.training.data import Table
from estate.training.manifest import assemble_manifest
from estate.training.train._calibration import Calibration
from estate.training.train._prepare import Prepared
from estate.training.train._progress import Progress
from estate.training.train._selection import Choice, Scored


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
