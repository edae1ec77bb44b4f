"""The ``predict`` function: raw features in, valuation (or probability) out."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flask
import numpy as np

from estate.contract.bundle import Manifest
from estate.contract.errors import FieldError
from estate.contract.instances import columnar_field, instance_json_schema
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.outputs import intervals, labels
from estate.runtime.packing import Packed
from estate.runtime.serving_model import ServingModel, model_info
from estate.serving import predlog
from estate.serving.comparables import describe_comparables, with_comparables
from estate.serving.endpoint import serve
from estate.serving.remote import is_remote_call, remote_answer
from estate.serving.requests import check_instance_count, comparables_asked, parse_envelope
from estate.serving.settings import ServingSettings
from estate.serving.versions import holder


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
        "comparables": describe_comparables(model),
    }


def predict_body(model: ServingModel, body: Any, settings: ServingSettings) -> dict[str, Any]:
    """Validate a request body and predict every instance in one ONNX call.

    Up to ``ESTATE_ROW_WARNINGS_MAX_INSTANCES`` instances each prediction carries its own
    ``warnings``; a larger batch gets one ``warning_summary`` for the request instead
    (per field and code: how many rows, the first row indices), so a batch of sparse
    rows does not answer one warning object per missing cell.

    With ``"parameters": {"comparables": k}`` each prediction also lists the k most
    similar training sales (`with_comparables`); without it no comparables work is done.
    """
    check_instance_count(body, settings.max_instances, "predict")
    request = parse_envelope(body, settings.max_field_errors)
    if request.inputs is not None:  # the columnar form
        packed = model.pack_columns_checked(request.inputs, settings.max_field_errors)
    else:
        packed = model.pack_checked(request.instances or [], settings.max_field_errors)
    k = comparables_asked(  # rows as packed, whatever form the body sent them in
        request.parameters, packed.numeric.shape[0], settings.comparables_max_instances
    )
    prediction, raw, scale = model.run(packed.numeric, packed.categorical)
    bounds, label = intervals(raw, model.manifest, scale), labels(prediction, model.manifest)
    per_row = len(prediction) <= settings.row_warnings_max_instances
    finite = np.isfinite(prediction)
    if bounds is not None:
        finite &= np.isfinite(bounds).all(axis=1)
    predictions = _predictions(model.manifest, prediction, bounds, label)
    if per_row:
        for i, item in enumerate(predictions):
            item["warnings"] = model.row_warnings(packed, i)
    columnar = request.inputs is not None
    for i in np.flatnonzero(~finite).tolist():  # one vectorised check; named here if it fails
        where = partial(_inputs, model, packed, i, columnar)
        require_finite(predictions[i], f"predictions[{i}]", where)
    answer: dict[str, Any] = {"predictions": predictions}
    if k:
        with_comparables(
            model,
            packed.numeric,
            packed.categorical,
            predictions,
            k,
            answer,
            packed.missing_category,
        )
    if not per_row:
        answer["warning_summary"] = model.warning_summary(packed, settings.warning_rows_listed)
    answer["model"] = model_info(model)
    return answer


def _inputs(model: ServingModel, packed: Packed, row: int, columnar: bool) -> list[FieldError]:
    """The out-of-range fields of `row`, named in a 422 when its answer is not finite
    (``instances[3].area``, or ``inputs.area[3]`` for a columnar body)."""
    errors = out_of_range(model.row_warnings(packed, row), f"instances[{row}]")
    if columnar:
        errors = [FieldError(columnar_field(e.field), e.message, e.type) for e in errors]
    return errors


def _predictions(
    m: Manifest, prediction: np.ndarray, bounds: np.ndarray | None, label: np.ndarray | None
) -> list[dict[str, Any]]:
    """Every instance's answer: the value and its label (classification) or interval
    (`estate.runtime.outputs` computed them for the batch), in one comprehension (a
    1,000-row batch made a thousand calls). The BigQuery remote function answers with
    the same objects."""
    out_name, values = m.output.name, prediction.tolist()
    if m.threshold is not None:
        threshold = m.threshold.value
        labels_ = [None] * len(values) if label is None else label.tolist()
        return [
            {out_name: value, "label": text, "threshold": threshold}
            for value, text in zip(values, labels_, strict=True)
        ]
    if bounds is not None and m.interval is not None:
        level = m.interval.level
        return [
            {out_name: value, "interval": {"lower": lower, "upper": upper, "level": level}}
            for value, (lower, upper) in zip(values, bounds.tolist(), strict=True)
        ]
    return [{out_name: value} for value in values]


def entry_point(
    settings: ServingSettings | None = None,
) -> Callable[[flask.Request], flask.Response]:
    """The ``predict`` function, its settings read once (main.py resolves it on first use)."""
    settings = settings or ServingSettings()
    holder(settings).defer_explainers()  # predict never explains: no SHAP tables at load

    def answer(model: ServingModel, request: flask.Request, body: Any) -> dict[str, Any]:
        """``{"instances"}`` → predictions (logged); a BigQuery remote-function batch → replies."""
        if is_remote_call(body):
            return remote_answer(body, holder(settings).route, _predictions, settings)
        return predlog.observe(request, body, lambda b: predict_body(model, b, settings), settings)

    def predict(request: flask.Request) -> flask.Response:
        """HTTP entry point (functions-framework target ``predict``)."""
        return serve(request, describe, answer, settings, settings.max_request_bytes)

    return predict
