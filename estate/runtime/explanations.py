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
from collections.abc import Sequence
from typing import Any

import numpy as np

from estate.contract.errors import NotExplainableError
from estate.contract.instances import MAX_FIELD_ERRORS, require_values, validate_instances
from estate.runtime.explainer import Explainer
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.serving_model import ServingModel


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
    rows = validate_instances(model.adapter, instances, max_field_errors)
    require_values(rows)
    numeric, categorical, warnings = model.pack(rows)
    prediction = model.run(numeric, categorical).prediction
    with np.errstate(all="ignore"):  # overflow from absurd inputs is reported as a 422
        phi = explainer.shap(numeric, categorical)
        derived = explainer.derived_values(numeric, categorical)
    answers = []
    for i in range(len(rows)):
        try:
            item = _one(
                model,
                explainer,
                {w["field"] for w in warnings[i] if w["code"] == "imputed"},
                (numeric[i], categorical[i], derived[i]),
                float(prediction[i]),
                phi[i],
                top_k,
            )
        except OverflowError:  # exp() of an absurd SHAP value: not a finite answer either
            require_finite(
                math.inf, f"explanations[{i}]", out_of_range(warnings[i], f"instances[{i}]")
            )
            raise
        require_finite(item, f"explanations[{i}]", out_of_range(warnings[i], f"instances[{i}]"))
        answers.append(item | {"warnings": warnings[i]})
    return answers


def _one(
    model: ServingModel,
    explainer: Explainer,
    imputed_fields: set[str],
    packed: tuple[np.ndarray, np.ndarray, np.ndarray],
    prediction: float,
    phi: np.ndarray,
    top_k: int | None = None,
) -> dict[str, Any]:
    """One instance's explanation, contributions sorted by |shap|.

    ``value`` is what the model used: the instance's value, or the imputed one (then
    ``imputed: true``, and the warnings say so too). A derived feature (computed by the
    graph, never sent) carries its ``formula`` and ``inputs``, its value is the formula's
    on the values the model used, and ``imputed`` when an input was."""
    m = model.manifest
    numeric, categorical, derived = packed
    out = m.output.name
    base = explainer.base
    values: list[Any] = [
        _number(float(f.impute if math.isnan(v) else v), f.integer)
        for f, v in zip(m.input.numeric, numeric, strict=True)
    ]
    values += [str(c) for c in categorical]
    formulas = {d.name: d for d in m.input.derived_features()}
    values += [
        _number(float(v), d.integer) for d, v in zip(formulas.values(), derived, strict=True)
    ]
    imputed = [name in imputed_fields for name in explainer.raw_names]  # as the warnings say
    for d in formulas.values():
        imputed[explainer.raw_names.index(d.name)] = any(n in imputed_fields for n in d.inputs)
    order = np.argsort(-np.abs(phi), kind="stable")
    items: list[dict[str, Any]] = []
    level = math.exp(base) if explainer.log_target else base
    for j in order:
        name = explainer.raw_names[j]
        item: dict[str, Any] = {"feature": name}
        if name in model.labels:
            item["label"] = model.labels[name]
        if name in model.units:
            item["unit"] = model.units[name]
        item["value"] = values[j]
        if name in formulas:
            item["formula"] = formulas[name].formula
            item["inputs"] = list(formulas[name].inputs)
        if imputed[j]:
            item["imputed"] = True
        item["shap"] = float(phi[j])
        if explainer.log_target:
            item["factor"] = math.exp(phi[j])
            after = level * item["factor"]
            item["effect"] = after - level
            level = after
        elif explainer.spec.scale == "raw":
            item["effect"] = float(phi[j])
        items.append(item)
    answer: dict[str, Any] = {
        out: prediction,
        "base_value": {"shap": base},
        "scale": _scale_name(model, explainer),
        "contributions": items[:top_k] if top_k else items,
    }
    if explainer.log_target:
        answer["base_value"][out] = math.exp(base)
    if top_k and len(items) > top_k:
        rest = items[top_k:]
        other: dict[str, Any] = {
            "features": len(rest),
            "shap": float(sum(r["shap"] for r in rest)),
        }
        if "effect" in rest[0]:
            other["effect"] = float(sum(r["effect"] for r in rest))
        if explainer.log_target:
            other["factor"] = math.exp(other["shap"])
        answer["other_features"] = other
    return answer


def _number(value: float, integer: bool) -> float | int:
    """Whole numbers of an integer feature print as integers ("Fireplaces = 2")."""
    return int(value) if integer and value.is_integer() else value


def _scale_name(model: ServingModel, explainer: Explainer) -> str:
    """Human name of what base + Σ shap adds up to."""
    out = model.manifest.output
    if explainer.spec.scale == "log_odds":
        return f"log-odds of {out.name}"
    if explainer.log_target:
        return f"log({out.name})"
    return f"{out.name} ({out.units})"
