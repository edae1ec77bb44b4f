"""The ``explain`` function: why the model values a house the way it does.

``POST {"instances": [...], "top_k": k}`` → per instance the prediction, the base value
and exact SHAP contributions per raw feature (see `estate.runtime.explanations`); ``GET`` →
health, the explainer's description and the global importance of every feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask

from estate.contract.instances import instance_json_schema, validate_instances
from estate.runtime.explanations import explain_instances
from estate.runtime.serving_model import ServingModel, model_info
from estate.serving.comparables import with_comparables
from estate.serving.endpoint import serve
from estate.serving.requests import check_instance_count, comparables_asked, parse_explain_envelope
from estate.serving.settings import ServingSettings
from estate.serving.versions import holder

METHOD = (
    "Exact path-dependent TreeSHAP (trees) and linear SHAP (linear models) on the encoded "
    "features, one-hot columns summed back to their raw feature. base + Σ shap = the "
    "model's output in `scale`. For log targets, factor = exp(shap) and effect = the "
    "change in the prediction when the factors are applied one by one, largest |shap| "
    "first, starting from exp(base): the effects sum to prediction - exp(base)."
)


def describe_explainer(model: ServingModel) -> dict[str, Any]:
    """Health, model identity, the explainer and global importance (the GET answer)."""
    spec = model.manifest.explainer
    return {
        "status": "ok",
        "model": {**model_info(model), "chosen": model.manifest.chosen},
        "explainer": None
        if spec is None
        else {
            "kind": spec.kind,
            "members": spec.members,
            "scale": spec.scale,
            "base_value": spec.base_value,
            "additivity_max_abs_error": spec.additivity_max_abs_error,
            "method": METHOD,
        },
        "global_importance": None
        if spec is None
        else [{"feature": k, "mean_abs_shap": v} for k, v in spec.global_importance.items()],
        "instance_schema": instance_json_schema(model.adapter),
    }


def explain_body(model: ServingModel, body: Any, settings: ServingSettings) -> dict[str, Any]:
    """Validate a request body and explain every instance.

    Explain has its own instance limit (``ESTATE_EXPLAIN_MAX_INSTANCES``, well below
    predict's): each row costs TreeSHAP work and ~18 kB of answer.
    """
    check_instance_count(body, settings.explain_max_instances, "explain")
    request = parse_explain_envelope(body, settings.max_field_errors)
    k = comparables_asked(
        request.parameters, len(request.instances), settings.comparables_max_instances
    )
    explanations = explain_instances(
        model, request.instances, request.top_k, max_field_errors=settings.max_field_errors
    )
    answer: dict[str, Any] = {"explanations": explanations}
    if k:  # the rows are valid: explain_instances checked them
        rows = validate_instances(model.adapter, request.instances, settings.max_field_errors)
        packed = model.pack_flags(rows)
        with_comparables(
            model,
            packed.numeric,
            packed.categorical,
            explanations,
            k,
            answer,
            packed.missing_category,
        )
    answer["model"] = model_info(model)
    return answer


def entry_point(
    settings: ServingSettings | None = None,
) -> Callable[[flask.Request], flask.Response]:
    """The ``explain`` function, its settings read once (main.py resolves it on first use)."""
    settings = settings or ServingSettings()
    holder(settings).need_explainers()  # built and checked with each bundle

    def answer(model: ServingModel, _: flask.Request, body: Any) -> dict[str, Any]:
        return explain_body(model, body, settings)

    def explain(request: flask.Request) -> flask.Response:
        """HTTP entry point (functions-framework target ``explain``)."""
        return serve(request, describe_explainer, answer, settings, settings.max_request_bytes)

    return explain
