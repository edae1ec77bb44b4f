"""Step 2: every candidate scored on the same K folds, and the best (or the cheapest near
it) refit on all training rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from estate.contract.bundle import CandidateResult, PredictCost
from estate.contract.errors import ConfigError
from estate.training import candidates as cands
from estate.training.config import DatasetConfig
from estate.training.evaluate import (
    classification_metrics,
    out_of_fold,
    predict_raw,
    regression_metrics,
    selection_metric,
)
from estate.training.train._prepare import Prepared
from estate.training.train._progress import Progress


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
