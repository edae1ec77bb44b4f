"""The model card: what a bundle was trained on, how well it did, and what it is not for.

Training writes ``model_card.md`` into every bundle (checksummed in the manifest's
``model_card`` field, verified by the registry like the model file). The card is
rendered from the finished manifest (metrics, gates, interval or threshold, parity) plus
the few facts only training sees (`CardFacts`: period, coverage by fifth, ranges), so
the Markdown for people and the JSON for machines cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from estate.contract.bundle import (
    FeatureRange,
    FifthCoverage,
    Manifest,
    ModelCard,
    sha256_hex,
)
from estate.training.config import DatasetConfig

#: How the card names each interval method.
METHOD_NAMES = {
    "cross_conformal": "fixed band (split conformal)",
    "normalized_conformal": "per-house band (normalized conformal)",
}
#: Numeric features whose training range the card lists (largest global importance first).
RANGES_SHOWN = 12


@dataclass(frozen=True)
class CardFacts:
    """What the card states that the rest of the manifest does not hold."""

    period: str | None
    target_range: tuple[float, float] | None
    positive_rate: float | None
    interval_by_fifth: list[FifthCoverage] | None
    limits: list[str] = field(default_factory=list)


def sale_period(config: DatasetConfig, features: pd.DataFrame) -> str | None:
    """'2006-01 to 2010-07' from the config's year (and month) columns; None without them."""
    if config.period is None:
        return None
    year = pd.to_numeric(features[config.period.year], errors="coerce")
    if config.period.month is None:
        valid = year.dropna()
        return None if valid.empty else f"{int(valid.min())} to {int(valid.max())}"
    month = pd.to_numeric(features[config.period.month], errors="coerce")
    stamp = (year * 12 + month - 1).dropna()
    if stamp.empty:
        return None
    first, last = int(stamp.min()), int(stamp.max())
    return f"{first // 12}-{first % 12 + 1:02d} to {last // 12}-{last % 12 + 1:02d}"


def coverage_by_fifth(
    predicted: np.ndarray, inside: np.ndarray, fifths: int = 5
) -> list[FifthCoverage]:
    """Holdout coverage among rows ranked by predicted value, cut into fifths: a single
    global coverage can hide a band too narrow for expensive houses and too wide for cheap
    ones."""
    order = np.argsort(predicted, kind="stable")
    result = []
    for part in np.array_split(order, fifths):
        if part.size == 0:
            continue
        result.append(
            FifthCoverage(
                lower=float(predicted[part].min()),
                upper=float(predicted[part].max()),
                rows=int(part.size),
                coverage=float(inside[part].mean()),
            )
        )
    return result


def default_limits(config: DatasetConfig) -> list[str]:
    """Limits every model shares, before the config's own."""
    found = [
        "Inputs outside the training ranges below are extrapolations: serving warns "
        "(`out_of_range`) but still answers.",
        "Categories never seen in training are treated as the training mode "
        "(`unknown_category` warning).",
    ]
    if config.row_filter:
        found.append(f"Trained only on rows where `{config.row_filter}`; others are out of scope.")
    return found


def _fmt(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _named(feature: str, labels: dict[str, str]) -> str:
    return f"{labels[feature]} (`{feature}`)" if feature in labels else f"`{feature}`"


def _ranges(manifest: Manifest) -> list[FeatureRange]:
    order = list(manifest.explainer.global_importance) if manifest.explainer else []
    rank = {name: i for i, name in enumerate(order)}
    numeric = sorted(manifest.input.numeric, key=lambda f: rank.get(f.name, len(rank)))
    return [
        FeatureRange(
            feature=f.name,
            p01=f.quantiles.get("p01", f.min),
            p99=f.quantiles.get("p99", f.max),
        )
        for f in numeric[:RANGES_SHOWN]
    ]


def _metric_table(manifest: Manifest) -> list[str]:
    names = list(dict.fromkeys(k for c in manifest.candidates for k in c.cv_metrics))
    head = "| candidate | estimator | " + " | ".join(f"CV {n}" for n in names)
    head += " | " + " | ".join(f"holdout {n}" for n in names) + " |"
    head += " predict ms / 1,000 rows | trees | SHAP paths |"
    lines = [head, "|" + " --- |" * (5 + 2 * len(names))]
    for c in manifest.candidates:
        cv = " | ".join(f"{c.cv_metrics.get(n, float('nan')):.4g}" for n in names)
        ho = " | ".join(f"{c.holdout_metrics.get(n, float('nan')):.4g}" for n in names)
        star = " (chosen)" if c.name == manifest.chosen else ""
        cost = c.cost
        spend = (
            f"{cost.onnx_ms_per_1000_rows:.1f} | {cost.trees} | {cost.shap_paths}"
            if cost
            else "n/a | n/a | n/a"
        )
        lines.append(f"| {c.name}{star} | {c.estimator} | {cv} | {ho} | {spend} |")
    return lines


def _interval_lines(manifest: Manifest) -> list[str]:
    """What the interval is, its holdout coverage, and the methods training compared
    (figures from the manifest, which training computed on the holdout)."""
    iv, units = manifest.interval, manifest.output.units
    assert iv is not None
    if iv.adaptive is None:
        how = f"prediction ± {iv.quantile:.4g} in the model's scale, the same for every row"
    else:
        how = (
            f"prediction ± {iv.adaptive.quantile:.4g} times this row's scale, in the model's "
            f"scale. The scale ({iv.adaptive.scale_min:.3g} to {iv.adaptive.scale_max:.3g}) "
            f"is the graph's `scale` output: {iv.adaptive.scale_model}"
        )
    method = (iv.adaptive or iv).method.replace("_", " ")
    lines = [
        f"{iv.level:.0%} {method} interval: {how}. Calibrated on {iv.calibration_rows:,} "
        f"out-of-fold predictions. Holdout coverage {iv.served_coverage:.1%}, median width "
        f"{_fmt(iv.served_median_width)} {units}.",
    ]
    if iv.comparison:
        lines += [
            "",
            "Methods compared on the same holdout (coverage by fifth of predicted value, "
            "cheapest first; width relative to the prediction):",
            "",
            "| method | coverage | "
            + " | ".join(f"fifth {i + 1}" for i in range(len(iv.comparison[0].by_fifth)))
            + " | median relative width | median width |",
            "| --- |" + " --- |" * (len(iv.comparison[0].by_fifth) + 3),
        ]
        for row in iv.comparison:
            name = METHOD_NAMES.get(row.method, row.method) + (" (served)" if row.served else "")
            fifths = " | ".join(f"{f.coverage:.1%}" for f in row.by_fifth)
            lines.append(
                f"| {name} | {row.coverage:.1%} | {fifths} | {row.median_relative_width:.1%} | "
                f"{_fmt(row.median_width)} {units} |"
            )
    return lines


def render(manifest: Manifest, card: ModelCard) -> str:
    """The card's Markdown (without its own checksum, which the manifest holds)."""
    m, out = manifest, manifest.output
    label = m.input.labels()
    if card.target_range is not None:
        spread = f", from {_fmt(card.target_range[0])} to {_fmt(card.target_range[1])}"
    else:
        spread = f", `{out.positive_label}` in {card.positive_rate or 0:.1%} of rows"
    lines = [
        f"# Model card: {m.name} {m.version}",
        "",
        out.description + ".",
        "",
        "## Data",
        f"- Source: `{card.data_source}` (sha256 `{m.lineage.sha256[:12]}…`, "
        f"snapshot `{m.lineage.snapshot_uri}`)",
        f"- Data card: `{card.data_card}`" if card.data_card else "- Data card: none given",
        f"- Rows: {card.rows:,} used of {m.lineage.rows:,}"
        + (f" (row filter `{m.lineage.row_filter}`)" if m.lineage.row_filter else "")
        + f"; {m.training.get('rows_train', 0):,} for training, "
        f"{m.training.get('rows_holdout', 0):,} held out; "
        f"{m.training.get('folds')}-fold cross-validation",
        f"- Period: {card.period or 'the data has no date column'}",
        f"- Target: `{card.target}` ({out.units or 'no unit'}"
        + (", modelled as its logarithm" if out.target_transform == "log" else "")
        + ")"
        + spread,
        "",
        "## Candidates",
        f"Same folds and holdout for every candidate; chosen by CV `{m.selection_metric}`.",
        "",
        *_metric_table(m),
        "",
        "## Gates and verdict",
    ]
    if m.promotion is None:
        lines.append("No gates were run.")
    else:
        lines += ["| gate | passed | detail |", "| --- | --- | --- |"]
        lines += [
            f"| {g.name} | {'yes' if g.passed else 'no'} | {g.detail} |" for g in m.promotion.gates
        ]
        lines += ["", f"Verdict: **{m.promotion.decision}** ({m.promotion.reason})."]
    lines.append("")
    if m.interval is not None:
        lines += ["## Interval", *_interval_lines(m)]
        if card.interval_by_fifth:
            lines += ["", "| fifth of predicted value | rows | coverage |", "| --- | --- | --- |"]
            lines += [
                f"| {_fmt(f.lower)} to {_fmt(f.upper)} | {f.rows} | {f.coverage:.1%} |"
                for f in card.interval_by_fifth
            ]
    if m.threshold is not None:
        th = m.threshold
        shown = ", ".join(f"{k} {v:.3f}" for k, v in th.holdout_metrics.items())
        lines += [
            "## Decision threshold",
            f"No interval: this is a classifier. Label = `{out.positive_label}` when the "
            f"probability is at least {th.value:.4g} ({th.criterion}). Holdout: {shown}.",
        ]
    p = m.parity
    lines += [
        "",
        "## Parity",
        f"The ONNX graph against the fitted pipeline on {p.rows} holdout rows: max absolute "
        f"difference {p.max_abs_diff:.2e}, max relative {p.max_rel_diff:.2e} "
        f"(tolerance {p.tolerance_rel:g}"
        + (f", absolute {p.tolerance_abs:g}" if p.tolerance_abs is not None else "")
        + ").",
        "",
        "## Intended use",
        card.intended_use,
        "",
        "## Limits",
        *[f"- {limit}" for limit in card.limits],
        "",
        "### Training ranges (1st to 99th percentile)",
        "| feature | from | to |",
        "| --- | --- | --- |",
        *[
            f"| {_named(r.feature, label)} | {_fmt(r.p01)} | {_fmt(r.p99)} |"
            for r in card.training_ranges
        ],
        "",
    ]
    return "\n".join(lines)


def attach_card(
    manifest: Manifest, config: DatasetConfig, facts: CardFacts
) -> tuple[Manifest, bytes]:
    """The manifest with its ``model_card`` entry, and the card's bytes."""
    card = ModelCard(
        sha256="",
        bytes=0,
        data_source=manifest.lineage.source_uri,
        data_card=config.data_card,
        rows=manifest.lineage.rows_used,
        period=facts.period,
        target=manifest.output.target,
        target_range=facts.target_range,
        positive_rate=facts.positive_rate,
        interval_by_fifth=facts.interval_by_fifth,
        training_ranges=_ranges(manifest),
        intended_use=config.intended_use
        or f"{manifest.output.description}, for data like the training data.",
        limits=[*default_limits(config), *config.limits, *facts.limits],
    )
    data = render(manifest, card).encode()
    card = card.model_copy(update={"sha256": sha256_hex(data), "bytes": len(data)})
    return manifest.model_copy(update={"model_card": card}), data
