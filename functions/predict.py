"""The ``predict`` function: raw features in, valuation (or probability) out."""

from __future__ import annotations

from typing import Any

import flask

from functions import predlog
from functions.endpoint import serve
from functions.errors import bad_request, require_finite, too_large
from functions.model import ServingModel, model_info
from functions.schema import instance_json_schema, parse_envelope, validate_instances
from functions.settings import get_settings


def describe(model: ServingModel) -> dict[str, Any]:
    """Health, model identity and the JSON Schema of one instance (the GET answer)."""
    m = model.manifest
    return {
        "status": "ok",
        "model": {
            **model_info(model),
            "task": m.task,
            "created_at": m.created_at.isoformat(),
            "chosen": m.chosen,
            "output": m.output.model_dump(),
        },
        "instance_schema": instance_json_schema(model.adapter),
    }


def predict_body(model: ServingModel, body: Any) -> dict[str, Any]:
    """Validate a request body and predict every instance in one ONNX call."""
    settings = get_settings()
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        count = len(body["instances"])
        if count > settings.max_instances:
            raise too_large(
                f"{count} instances in one request; the limit is {settings.max_instances}. "
                "Split the batch."
            )
    request = parse_envelope(body)
    instances = validate_instances(model.adapter, request.instances)
    for i, row in enumerate(instances):
        if all(v is None for v in row.values()):
            raise bad_request(
                f"instances[{i}] has no feature values; send at least one "
                "(GET this URL for the list).",
            )
    out_name = model.manifest.output.name
    threshold = model.manifest.threshold
    predictions = []
    for i, p in enumerate(model.predict(instances)):
        item: dict[str, Any]
        if threshold is not None:
            label = (
                model.manifest.output.positive_label
                if p.value >= threshold.value
                else (
                    model.manifest.output.negative_label
                    or f"not {model.manifest.output.positive_label}"
                )
            )
            item = {out_name: p.value, "label": label, "threshold": threshold.value}
        else:
            item = {out_name: p.value}
            bounds = model.interval(p.raw)
            if bounds is not None and model.manifest.interval is not None:
                item["interval"] = {
                    "lower": bounds[0],
                    "upper": bounds[1],
                    "level": model.manifest.interval.level,
                }
        item["warnings"] = p.warnings
        _require_finite(i, item, p.warnings)
        predictions.append(item)
    return {"predictions": predictions, "model": model_info(model)}


def _require_finite(row: int, item: dict[str, Any], warnings: list[dict[str, str]]) -> None:
    interval = item.get("interval", {})
    numbers = [v for v in (*item.values(), *interval.values()) if isinstance(v, float)]
    require_finite(row, numbers, warnings)


def predict(request: flask.Request) -> flask.Response:
    """HTTP entry point (functions-framework target ``predict``)."""
    return serve(
        request,
        describe,
        lambda model, r, body: predlog.observe(r, body, lambda b: predict_body(model, b)),
        get_settings().max_request_bytes,
    )
