"""Explanations of the served model: exact SHAP values per raw feature, readable by people.

`explain_instances` is the in-process API: the ``explain`` function and the chat
advisor both call it on a `ServingModel`, whose `Explainer` computes the values.

For log-price models each contribution is given three ways: ``shap`` (log space; base +
Σ shap = log of the predicted price), ``factor`` = exp(shap) (the price is exp(base) x Π
factors) and ``effect`` in the target's units. Effects are applied *sequentially*, largest
|shap| first, starting from exp(base): each effect is the change in price that factor
makes given the ones before it, so the effects sum exactly to price - exp(base).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from estate.contract.errors import NotExplainableError
from estate.contract.instances import MAX_FIELD_ERRORS
from estate.runtime.explainer import Explainer
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.serving_model import ServingModel

#: Per loaded model, the static part of each feature's contribution (`_static_items`).
_STATIC: weakref.WeakKeyDictionary[ServingModel, _Static] = weakref.WeakKeyDictionary()


def not_explainable(model: ServingModel) -> NotExplainableError:
    m = model.manifest
    return NotExplainableError(
        f"{m.name}/{m.version} ({m.chosen}) was exported without an explainer: only "
        "ridge/logistic, XGBoost, random forests and blends of them are explained. "
        "Use predict, or retrain with one of those candidates."
    )


def explain_instances(
    model: ServingModel,
    instances: Sequence[Any],
    top_k: int | None = None,
    *,
    max_field_errors: int = MAX_FIELD_ERRORS,
) -> list[dict[str, Any]]:
    """Validate raw instances and explain each one (the endpoint's per-instance JSON).

    Raises `NotExplainableError` when the bundle has no explainer, `InvalidInputError` naming up to
    `max_field_errors` bad fields, `CannotEstimateError` when an answer would not be finite.
    """
    explainer: Explainer | None = getattr(model, "explainer", None)
    if explainer is None:
        raise not_explainable(model)
    packed = model.pack_checked(list(instances), max_field_errors)
    numeric, categorical = packed.numeric, packed.categorical
    prediction = model.run(numeric, categorical).prediction
    with np.errstate(all="ignore"):  # overflow from absurd inputs is reported as a 422
        phi, derived = explainer.shap_and_derived(numeric, categorical)
        order = np.argsort(-np.abs(phi), axis=1, kind="stable")
        ranked = np.take_along_axis(phi, order, axis=1)
        if explainer.log_target:  # factors applied one by one, largest |shap| first
            factors = np.exp(ranked)
            start = np.full((len(phi), 1), math.exp(explainer.base))
            levels = np.cumprod(np.hstack([start, factors]), axis=1)  # exp(base) x f1 x f2 ...
            effects = np.diff(levels, axis=1)
            finite = np.isfinite(levels).all(axis=1) & np.isfinite(effects).all(axis=1)
        else:
            factors = effects = ranked
            finite = np.isfinite(ranked).all(axis=1)
    finite &= np.isfinite(prediction)
    static = _static_items(model, explainer)
    integer = [f.integer for f in model.manifest.input.numeric]
    impute = np.array([f.impute for f in model.manifest.input.numeric], dtype=np.float64)
    used = np.where(np.isnan(numeric), impute, numeric).tolist()  # the value the model used
    cats = categorical.tolist()
    formulas = model.manifest.input.derived_features()
    derived_rows = np.asarray(derived, dtype=np.float64).tolist()
    answers = []
    for i in range(len(prediction)):
        warnings = model.row_warnings(packed, i)
        values: list[Any] = [
            int(v) if whole and v.is_integer() else v  # "Fireplaces = 2"
            for v, whole in zip(used[i], integer, strict=True)
        ]
        values += [str(c) for c in cats[i]]
        values += [  # a derived feature: the formula's value on the values the model used
            int(v) if d.integer and v.is_integer() else v
            for d, v in zip(formulas, derived_rows[i], strict=True)
        ]
        try:
            item = _one(
                model,
                explainer,
                {w["field"] for w in warnings if w["code"] == "imputed"},
                values,
                float(prediction[i]),
                (order[i], ranked[i], factors[i], effects[i]),
                static,
                top_k,
            )
        except OverflowError:  # exp() of an absurd SHAP sum: not a finite answer either
            require_finite(
                math.inf, f"explanations[{i}]", out_of_range(warnings, f"instances[{i}]")
            )
            raise
        if not finite[i]:  # names the first number that is not finite, and the inputs
            require_finite(item, f"explanations[{i}]", out_of_range(warnings, f"instances[{i}]"))
        answers.append(item | {"warnings": warnings})
    return answers


class _Static(NamedTuple):
    """What no row changes, per raw feature, built once per loaded model: ``head`` (name,
    label, unit), ``formula`` (a derived feature's formula and inputs, which follow its
    ``value``; empty otherwise) and ``derived`` (position, inputs) of each derived feature."""

    head: list[dict[str, Any]]
    formula: list[dict[str, Any]]
    derived: list[tuple[int, tuple[str, ...]]]


def _static_items(model: ServingModel, explainer: Explainer) -> _Static:
    cached = _STATIC.get(model)
    if cached is not None:
        return cached
    names = explainer.raw_names
    head = []
    for name in names:
        item: dict[str, Any] = {"feature": name}
        if name in model.labels:
            item["label"] = model.labels[name]
        if name in model.units:
            item["unit"] = model.units[name]
        head.append(item)
    formula: list[dict[str, Any]] = [_NOTHING] * len(names)
    derived = []
    for d in model.manifest.input.derived_features():
        j = names.index(d.name)
        formula[j] = {"formula": d.formula, "inputs": list(d.inputs)}
        derived.append((j, tuple(d.inputs)))
    static = _Static(head, formula, derived)
    _STATIC[model] = static
    return static


_IMPUTED: dict[str, Any] = {"imputed": True}
_NOTHING: dict[str, Any] = {}


def _one(
    model: ServingModel,
    explainer: Explainer,
    imputed_fields: set[str],
    values: list[Any],
    prediction: float,
    ranked: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    static: _Static,
    top_k: int | None = None,
) -> dict[str, Any]:
    """One instance's explanation, contributions sorted by |shap|.

    ``ranked`` is (feature order, shap, factor, effect), each largest |shap| first.
    ``values`` (per raw feature) are what the model used: the instance's value, or the
    imputed one (then ``imputed: true``, and the warnings say so too). A derived feature
    (computed by the graph, never sent) carries its ``formula`` and ``inputs``, its value
    is the formula's on the values the model used, and ``imputed`` when an input was."""
    out = model.manifest.output.name
    base = explainer.base
    names = explainer.raw_names
    shown = len(names) if not top_k else min(top_k, len(names))
    order, shap, factor, effect = (a[:shown].tolist() for a in ranked)
    flags = [_IMPUTED if n in imputed_fields else _NOTHING for n in names]
    for j, inputs in static.derived:
        flags[j] = _IMPUTED if any(n in imputed_fields for n in inputs) else _NOTHING
    head, extra = static.head, static.formula
    log_target = explainer.log_target
    items: list[dict[str, Any]]
    if log_target:
        items = [
            {
                **head[j],
                "value": values[j],
                **extra[j],
                **flags[j],
                "shap": s,
                "factor": f,
                "effect": e,
            }
            for j, s, f, e in zip(order, shap, factor, effect, strict=True)
        ]
    elif explainer.spec.scale == "raw":
        items = [
            {**head[j], "value": values[j], **extra[j], **flags[j], "shap": s, "effect": s}
            for j, s in zip(order, shap, strict=True)
        ]
    else:
        items = [
            {**head[j], "value": values[j], **extra[j], **flags[j], "shap": s}
            for j, s in zip(order, shap, strict=True)
        ]
    answer: dict[str, Any] = {
        out: prediction,
        "base_value": {"shap": base},
        "scale": _scale_name(model, explainer),
        "contributions": items,
    }
    if log_target:
        answer["base_value"][out] = math.exp(base)
    if shown < len(names):
        rest_shap = ranked[1][shown:].tolist()
        other: dict[str, Any] = {"features": len(rest_shap), "shap": float(sum(rest_shap))}
        if log_target:
            other["effect"] = float(sum(ranked[3][shown:].tolist()))
        elif explainer.spec.scale == "raw":
            other["effect"] = float(sum(rest_shap))
        if log_target:
            other["factor"] = math.exp(other["shap"])
        answer["other_features"] = other
    return answer


def _scale_name(model: ServingModel, explainer: Explainer) -> str:
    """Human name of what base + Σ shap adds up to."""
    out = model.manifest.output
    if explainer.spec.scale == "log_odds":
        return f"log-odds of {out.name}"
    if explainer.log_target:
        return f"log({out.name})"
    return f"{out.name} ({out.units})"
