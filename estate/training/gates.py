"""Promotion gates: may a freshly trained bundle replace the champion?

Every gate returns a `GateResult` (name, passed, detail); the bundle is written either
way, with the verdicts in ``manifest.promotion``, and becomes champion only if all pass:

* ``metrics``   the chosen candidate's CV metrics against ``[gates] min`` / ``max``;
* ``parity``    the measured ONNX parity against ``max_parity_rel_diff`` (or the export
  tolerance, which export already enforces; for probabilities the relative rule is on
  the odds of rows the absolute rule does not settle);
* ``explanation_additivity``  when the bundle has an explainer: its measured additivity
  error (base + Σ SHAP vs the ONNX output on the parity rows) against
  ``max_additivity_error``;
* ``schema``    compatibility with the champion: same task and output, same feature
  names with the same kinds; a categorical feature may gain categories but not lose any
  (a lost category would turn callers' valid values into "unknown"). Anything else is a
  schema change, allowed only with ``--allow-schema-change``;
* ``champion``  the new graph and the champion's graph run through onnxruntime on the
  SAME holdout rows (this run's); the new selection metric may be worse by at most
  ``champion_tolerance`` (relative).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from estate.contract.bundle import GateResult, InputSchema, Manifest, Promotion
from estate.contract.errors import BundleError, NotFoundError
from estate.runtime.packing import PackingRule
from estate.runtime.session import run_graph
from estate.storage.pointer import ServingPointer
from estate.storage.registry import Bundle, read_bundle, serving_version
from estate.storage.store import ArtifactStore
from estate.training.config import DatasetConfig
from estate.training.evaluate import (
    check_gates,
    classification_metrics,
    regression_metrics,
    selection_metric,
)


@dataclass(frozen=True)
class GateInputs:
    """What the gates look at: the new bundle, its holdout rows and the champion."""

    config: DatasetConfig
    manifest: Manifest
    model_bytes: bytes
    numeric: np.ndarray  # holdout rows packed in `manifest.input` order
    categorical: np.ndarray
    y: np.ndarray  # holdout target in the model's raw scale (e.g. log price)
    champion: Bundle | None
    champion_problem: str | None = None  # why the champion could not be read, if so
    allow_schema_change: bool = False


def load_champion(store: ArtifactStore, name: str) -> tuple[Bundle | None, str | None]:
    """The verified champion bundle, or None and why (never promoted, or unreadable)."""
    try:
        version = serving_version(store, name)
    except NotFoundError:
        return None, None
    try:
        return read_bundle(store, name, version), None
    except (BundleError, NotFoundError) as exc:
        return None, f"champion {version} is unreadable ({exc})"


def metric_gate(inputs: GateInputs) -> GateResult:
    m = inputs.manifest
    metrics = next(c for c in m.candidates if c.name == m.chosen).cv_metrics
    gates = inputs.config.gates
    failures = check_gates(metrics, gates.min, gates.max)
    if failures:
        return GateResult(name="metrics", passed=False, detail="; ".join(failures))
    checked = [f"{k}={metrics[k]:.4g} >= {v:g}" for k, v in gates.min.items()]
    checked += [f"{k}={metrics[k]:.4g} <= {v:g}" for k, v in gates.max.items()]
    return GateResult(
        name="metrics", passed=True, detail="CV " + (", ".join(checked) or "no thresholds set")
    )


def parity_gate(inputs: GateInputs) -> GateResult:
    parity = inputs.manifest.parity
    limit = inputs.config.gates.max_parity_rel_diff or parity.tolerance_rel
    passed = bool(np.isfinite(parity.max_rel_diff)) and parity.max_rel_diff <= limit
    relation = "<=" if passed else ">"
    measured = f"max relative difference {parity.max_rel_diff:.2e} {relation} {limit:g}"
    if parity.tolerance_abs is not None:  # probabilities: see estate.export.exporter
        measured = (
            f"max log-odds difference {parity.max_rel_diff:.2e} {relation} {limit:g} on rows "
            f"whose probability differs by more than {parity.tolerance_abs:g} (max "
            f"{parity.max_abs_diff:.1e})"
        )
    return GateResult(
        name="parity",
        passed=passed,
        detail=f"ONNX vs pipeline {measured} on {parity.rows} holdout rows",
    )


def explanation_additivity_gate(inputs: GateInputs) -> GateResult | None:
    """Explanations must add up to the served output; None when the bundle has no explainer."""
    explainer = inputs.manifest.explainer
    if explainer is None:
        return None
    error = explainer.additivity_max_abs_error
    limit = inputs.config.gates.max_additivity_error
    passed = bool(np.isfinite(error)) and error <= limit
    return GateResult(
        name="explanation_additivity",
        passed=passed,
        detail=f"base value + sum of SHAP vs ONNX output: max error {error:.2e} "
        f"{'<=' if passed else '>'} {limit:g} ({explainer.kind} explainer, {explainer.scale} "
        "scale)",
    )


def schema_changes(champion: Manifest, new: Manifest) -> list[str]:
    """How `new`'s contract differs from the champion's (empty: compatible)."""
    changes = []
    if champion.task != new.task:
        changes.append(f"task {champion.task} -> {new.task}")
    for attr in ("name", "target", "target_transform", "units"):
        old_value, new_value = getattr(champion.output, attr), getattr(new.output, attr)
        if old_value != new_value:
            changes.append(f"output {attr} {old_value!r} -> {new_value!r}")
    old = _kinds(champion.input)
    now = _kinds(new.input)
    if removed := sorted(set(old) - set(now)):
        changes.append(f"features removed: {', '.join(removed)}")
    if added := sorted(set(now) - set(old)):
        changes.append(f"features added: {', '.join(added)}")
    for name in sorted(set(old) & set(now)):
        if old[name] != now[name]:
            changes.append(f"{name}: {old[name]} -> {now[name]}")
    new_categories = {c.name: set(c.categories) for c in new.input.categorical}
    for cat in champion.input.categorical:
        lost = sorted(set(cat.categories) - new_categories.get(cat.name, set(cat.categories)))
        if lost:
            changes.append(f"{cat.name} lost categories: {', '.join(lost[:10])}")
    return changes


def _kinds(schema: InputSchema) -> dict[str, str]:
    return {f.name: f.kind for f in schema.numeric} | {c.name: c.kind for c in schema.categorical}


def schema_gate(inputs: GateInputs) -> GateResult:
    if inputs.champion is None:
        detail = inputs.champion_problem or "no champion yet"
        return GateResult(name="schema", passed=True, detail=f"{detail}: nothing to compare with")
    changes = schema_changes(inputs.champion.manifest, inputs.manifest)
    champion = inputs.champion.manifest.version
    if not changes:
        return GateResult(
            name="schema",
            passed=True,
            detail=f"compatible with champion {champion} (categories may only grow)",
        )
    listed = "; ".join(changes)
    if inputs.allow_schema_change:
        return GateResult(name="schema", passed=True, detail=f"changed, allowed by flag: {listed}")
    return GateResult(
        name="schema",
        passed=False,
        detail=f"incompatible with champion {champion}: {listed}. Callers would see a "
        "different contract; retrain with --allow-schema-change if that is intended",
    )


def repack(
    numeric: np.ndarray, categorical: np.ndarray, source: InputSchema, target: InputSchema
) -> tuple[np.ndarray, np.ndarray]:
    """Rows packed for `source` re-packed for `target`, matched by name, by the one packing
    rule (`estate.runtime.packing`): a feature `source` lacks is absent (NaN, the mode)."""
    n = numeric.shape[0]
    src_num = {f.name: j for j, f in enumerate(source.numeric)}
    src_cat = {c.name: j for j, c in enumerate(source.categorical)}
    out_num = np.full((n, len(target.numeric)), np.nan, dtype=np.float64)
    for j, feat in enumerate(target.numeric):
        if feat.name in src_num:
            out_num[:, j] = numeric[:, src_num[feat.name]]
    texts = np.full((n, len(target.categorical)), None, dtype=object)
    absent = np.zeros(texts.shape, dtype=bool)
    for j, cat in enumerate(target.categorical):
        if cat.name in src_cat:
            texts[:, j] = categorical[:, src_cat[cat.name]]
        else:
            absent[:, j] = True
    out_cat, _, _ = PackingRule(target).categories(texts, absent)
    return out_num, out_cat


def holdout_score(inputs: GateInputs, model_bytes: bytes, schema: InputSchema) -> float:
    """Selection metric of a graph on this run's holdout rows (re-packed for its schema)."""
    config = inputs.config
    log_target = config.target_transform == "log"
    numeric, categorical = repack(inputs.numeric, inputs.categorical, inputs.manifest.input, schema)
    prediction = run_graph(model_bytes, numeric, categorical)  # target units / probability
    metric, _ = selection_metric(config.classifier, log_target)
    if config.classifier:
        return classification_metrics(inputs.y, prediction)[metric]
    raw = np.log(np.maximum(prediction, 1e-300)) if log_target else prediction
    return regression_metrics(inputs.y, raw, log_target)[metric]


def champion_gate(inputs: GateInputs) -> GateResult:
    if inputs.champion is None:
        detail = inputs.champion_problem or "no champion yet"
        return GateResult(name="champion", passed=True, detail=f"{detail}: nothing to beat")
    config = inputs.config
    metric, higher = selection_metric(config.classifier, config.target_transform == "log")
    champ = inputs.champion.manifest
    new_score = holdout_score(inputs, inputs.model_bytes, inputs.manifest.input)
    old_score = holdout_score(inputs, inputs.champion.model_bytes, champ.input)
    tol = config.gates.champion_tolerance
    if higher:
        passed = new_score >= old_score - abs(old_score) * tol
    else:
        passed = new_score <= old_score + abs(old_score) * tol
    verdict = "beats or matches" if passed else "is worse than"
    return GateResult(
        name="champion",
        passed=bool(passed),
        detail=f"holdout {metric} {new_score:.5g} {verdict} champion {champ.version}'s "
        f"{old_score:.5g} on the same {inputs.y.size} rows (tolerance {tol:.1%})",
    )


Gate = Callable[[GateInputs], GateResult | None]

#: Every gate, in the order they are reported. A gate returning None does not apply.
GATES: list[Gate] = [
    metric_gate,
    parity_gate,
    explanation_additivity_gate,
    schema_gate,
    champion_gate,
]


def decide(inputs: GateInputs) -> Promotion:
    """Run every gate; the decision is ``promote`` only if all of them pass."""
    results = [r for gate in GATES if (r := gate(inputs)) is not None]
    failed = [r for r in results if not r.passed]
    champion = inputs.champion.manifest.version if inputs.champion else None
    if failed:
        reason = "failed " + "; ".join(f"{r.name}: {r.detail}" for r in failed)
    else:
        reason = f"all {len(results)} gates passed"
    return Promotion(
        decision="hold" if failed else "promote", reason=reason, champion=champion, gates=results
    )


def report(promotion: Promotion) -> list[str]:
    """Lines for the console: one per gate, then the decision."""
    lines = [f"  {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}" for g in promotion.gates]
    return [*lines, f"decision: {promotion.decision} ({promotion.reason})"]


def recorder(
    store: ArtifactStore,
    config: DatasetConfig,
    numeric: np.ndarray,
    categorical: np.ndarray,
    y: np.ndarray,
    allow_schema_change: bool = False,
) -> Callable[[Manifest, bytes], Manifest]:
    """The export hook that runs every gate and records the verdict in the manifest.

    The champion is read now, before export, so every gate compares against one version.
    """
    champion, problem = load_champion(store, config.name)

    def record(manifest: Manifest, model_bytes: bytes) -> Manifest:
        inputs = GateInputs(
            config,
            manifest,
            model_bytes,
            numeric,
            categorical,
            y,
            champion,
            problem,
            allow_schema_change,
        )
        return manifest.model_copy(update={"promotion": decide(inputs)})

    return record


def apply_decision(store: ArtifactStore, manifest: Manifest) -> str:
    """Promote a bundle whose gates all passed, unless the champion changed meanwhile.

    The gates compared against ``manifest.promotion.champion``; if another promotion
    moved the pointer during training, the comparison is stale and nothing changes.
    Returns the line to print.
    """
    from estate.contract.errors import PromotionError
    from estate.storage.pointer import promoted, update_pointer

    verdict = manifest.promotion
    if verdict is None or verdict.decision != "promote":
        return "NOT promoted: " + (verdict.reason if verdict else "no gate verdict recorded")
    expected = verdict.champion

    def change(current: ServingPointer | None) -> ServingPointer:
        found = current.champion if current else None
        if found != expected:
            raise PromotionError(
                f"NOT promoted: the champion changed from {expected} to {found} while "
                f"{manifest.version} was training, so its gates compared against the wrong "
                f"model. Compare again: estate promote {manifest.version}"
            )
        return promoted(current, manifest.version, note="promoted by training: gates passed")

    try:
        update_pointer(
            store,
            manifest.name,
            change,
            check=lambda v: read_bundle(store, manifest.name, v),
        )
    except PromotionError as exc:
        return str(exc)
    return f"promoted {manifest.version}: it now serves {manifest.name}"
