"""Request envelopes of predict and explain, and the checks every envelope shares.

Each envelope is a pydantic model (the source of the OpenAPI document, with the answers
in `estate.serving.responses`); the instances inside are validated against the model by
`estate.contract.instances`. Errors are domain errors (`InvalidInputError`,
`TooLargeError`), which `estate.serving.problems` turns into problem+json. At most
``ESTATE_MAX_FIELD_ERRORS`` field errors are built per request; the rest are counted.
JSON parsing is `estate.serving.jsonbody`; chat's and analyze's bodies are
`estate.serving.advice_requests` (a predict process never builds their validators).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from estate.contract.errors import FieldError, InvalidInputError, TooLargeError
from estate.contract.instances import FIX, ErrorList, shown

M = TypeVar("M", bound=BaseModel)


class Parameters(BaseModel):
    """Vertex AI's ``parameters``: options for the whole request."""

    model_config = ConfigDict(extra="forbid")
    comparables: int = Field(
        0,
        ge=0,
        le=20,
        strict=True,
        description="Also return, per instance, this many most similar training sales "
        "(price, sale date, distance, main differences); 0 (default) returns none. "
        "Similarity: importance-weighted distance over the model's most important features "
        "plus great-circle distance when the data has coordinates (README, 'Comparable "
        "sales'). A model without a comparables table answers without them and says why "
        "in `comparables_unavailable`. At most ESTATE_COMPARABLES_MAX_INSTANCES (500) "
        "instances per request that asks for them (413 above).",
    )


#: Message for an unknown key inside ``parameters``.
UNKNOWN_PARAMETER = "unknown parameter: the only parameter is 'comparables' (an integer 0 to 20)"


class PredictRequest(BaseModel):
    """Rows, Vertex AI's convention: ``{"instances": [{feature: value, ...}, ...]}``; or,
    for batches, columns (TensorFlow Serving's columnar form): ``{"inputs": {feature:
    [value, ...], ...}}``; with optional Vertex ``"parameters": {...}``. Send exactly one
    of the two forms; both get the same checks and
    the same predictions, and errors in columns are named ``inputs.<feature>[i]``.
    """

    # Each instance is checked by the model's instance validator (`validate_instances`),
    # which names a non-object instance too; the envelope does not copy them first. A
    # columnar body is read column by column (`ServingModel.pack_columns_checked`).
    model_config = ConfigDict(extra="forbid")
    instances: list[Any] | None = Field(
        None, min_length=1, description="One object per row: feature name → value."
    )
    inputs: dict[str, list[Any]] | None = Field(
        None,
        description="Columnar form: feature name → one value per row (null = missing), "
        "every array as long as the others; a feature left out is missing in every row. "
        "The same checks and the same predictions as `instances`, in less JSON.",
    )
    parameters: Parameters | None = None


class ExplainRequest(BaseModel):
    """``{"instances": [...], "top_k": optional}``: predict's envelope plus a cut-off."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Any] = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, strict=True, description="Keep the k largest.")
    parameters: Parameters | None = None


def check_instance_count(body: Any, limit: int, function: str) -> None:
    """413 before any validation when a body carries more instances than `limit` (rows,
    or the longest column of a columnar ``inputs``)."""
    if not isinstance(body, dict):
        return
    count = 0
    if isinstance(body.get("instances"), list):
        count = len(body["instances"])
    elif isinstance(body.get("inputs"), dict):
        count = max((len(v) for v in body["inputs"].values() if type(v) is list), default=0)
    if count > limit:
        raise TooLargeError(
            f"{count} instances in one {function} request; the limit is {limit}. Split the batch."
        )


_PREDICT_SHAPE = (
    'The body must be {"instances": [{feature: value, ...}, ...]} or, column by column, '
    '{"inputs": {feature: [value, ...], ...}}, with optional "parameters": {"comparables": k}.'
)


def parse_envelope(body: Any, max_field_errors: int) -> PredictRequest:
    """The request envelope (rows or columns, exactly one), or a 400 naming what is wrong."""
    missing = FieldError(
        "instances",
        "missing: send 'instances' (one object per row) or 'inputs' (one array per feature)",
        "missing",
    )
    try:
        request = parse_body(
            PredictRequest,
            body,
            "unknown field: the body takes 'instances' or 'inputs', and 'parameters'",
            _PREDICT_SHAPE,
            max_field_errors=max_field_errors,
        )
    except InvalidInputError as exc:
        if isinstance(body, dict) and "instances" not in body and "inputs" not in body:
            exc.errors.append(missing)  # named with the other envelope errors
        raise
    if request.instances is None and request.inputs is None:
        raise InvalidInputError(_PREDICT_SHAPE, [missing])
    if request.instances is not None and request.inputs is not None:
        raise InvalidInputError(
            _PREDICT_SHAPE,
            [
                FieldError(
                    "inputs", "send either 'instances' (rows) or 'inputs' (columns)", "one_of"
                )
            ],
        )
    return request


def parse_explain_envelope(body: Any, max_field_errors: int) -> ExplainRequest:
    """The request envelope, or a 400 naming every bad field."""
    return parse_body(
        ExplainRequest,
        body,
        "unknown field: the body takes 'instances', 'top_k' and 'parameters'",
        'The body must be {"instances": [{feature: value, ...}, ...], "top_k": k, '
        '"parameters": {"comparables": k}} (top_k and parameters optional).',
        max_field_errors=max_field_errors,
    )


def parse_body(
    model: type[M], body: Any, unknown: str, detail: str | None = None, *, max_field_errors: int
) -> M:
    """`body` validated as `model`, or a 400 naming the bad fields (`unknown` for extras).

    Unknown top-level keys are counted and dropped before pydantic (their number costs
    nothing), and at most `max_field_errors` (ESTATE_MAX_FIELD_ERRORS) errors are built.
    """
    errors = ErrorList(max_field_errors)
    names = {f.alias or name for name, f in model.model_fields.items()}
    if isinstance(body, dict) and model.model_config.get("extra") == "forbid":
        extra = list(islice((k for k in body if k not in names), errors.limit))
        if extra:
            count = sum(1 for k in body if k not in names)
            errors.add(count, (FieldError(shown(k), unknown, "extra_forbidden") for k in extra))
            body = {k: v for k, v in body.items() if k in names}
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        errors.add_validation(
            exc,
            lambda e: FieldError(
                field_path(e["loc"]),
                _extra_message(e["loc"], unknown) if e["type"] == "extra_forbidden" else e["msg"],
                e["type"],
            ),
        )
    else:
        if not errors.total:
            return parsed
    raise errors.problem(detail or f"{errors.total} invalid field(s); {FIX}")


def _extra_message(loc: tuple[int | str, ...], unknown: str) -> str:
    """What to say about an unknown key: `unknown` at the top, its own words inside
    ``parameters``."""
    return UNKNOWN_PARAMETER if len(loc) > 1 and loc[0] == "parameters" else unknown


def comparables_asked(parameters: Parameters | None, instances: int, limit: int) -> int:
    """How many comparables each instance asks for (0: none); a 413 naming
    ``parameters.comparables`` when more than `limit` instances ask for them."""
    k = parameters.comparables if parameters is not None else 0
    if k and instances > limit:
        raise TooLargeError(
            f"{instances} instances ask for comparables; the limit is {limit} per request "
            "(ESTATE_COMPARABLES_MAX_INSTANCES). Split the batch, or drop "
            "parameters.comparables.",
            [FieldError("parameters.comparables", f"{instances} instances > {limit}", "limit")],
        )
    return k


def field_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as callers write it: messages[1].content."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{shown(part)}" if text else shown(str(part))
    return text or "(body)"
