"""Request validation with pydantic: the envelope, then each instance against the manifest.

The instance type is built at load time from the manifest's input schema, so the JSON
Schema served on ``GET`` and the checks made on ``POST`` can never drift apart.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NotRequired, TypeVar

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from functions.errors import FieldError, bad_request
from model_export.bundle import InputSchema

MAX_STRING = 200
M = TypeVar("M", bound=BaseModel)

Number = Annotated[float, Strict(), AllowInfNan(False)]
Category = Annotated[str, StringConstraints(max_length=MAX_STRING)]


class PredictRequest(BaseModel):
    """Vertex AI's convention: ``{"instances": [{feature: value, …}, …]}``."""

    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] = Field(min_length=1)


def _describe(parts: list[str]) -> str:
    return " ".join(p for p in parts if p)


def instance_adapter(schema: InputSchema) -> TypeAdapter[list[dict[str, Any]]]:
    """A validator for a list of instances: known fields only, right types, finite numbers."""
    fields: dict[str, Any] = {}
    for num in schema.numeric:
        extra: Any = {"x-training-min": num.min, "x-training-max": num.max, "x-impute": num.impute}
        desc = _describe([num.description, f"Number; training range {num.min:g}…{num.max:g}."])
        fields[num.name] = NotRequired[  # type: ignore[valid-type]
            Annotated[Number | None, Field(description=desc, json_schema_extra=extra)]
        ]
    for cat in schema.categorical:
        extra = {"x-categories": list(cat.categories), "x-impute": cat.impute}
        desc = _describe([cat.description, "Category; known values in x-categories."])
        fields[cat.name] = NotRequired[  # type: ignore[valid-type]
            Annotated[Category | None, Field(description=desc, json_schema_extra=extra)]
        ]
    instance = TypedDict("Instance", fields)  # type: ignore[misc]
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, title="Instance")
    item: Any = with_config(config)(instance)
    adapter: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[item])  # type: ignore[valid-type]
    return adapter


def instance_json_schema(adapter: TypeAdapter[list[dict[str, Any]]]) -> dict[str, Any]:
    """The JSON Schema of one instance (the adapter validates a list of them)."""
    schema = adapter.json_schema()
    ref = schema["items"].get("$ref", "")
    if ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    items: dict[str, Any] = schema["items"]
    return items


def _where(loc: tuple[int | str, ...]) -> str:
    text = "instances"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


_MESSAGES = {
    "extra_forbidden": "unknown field: remove it or check the spelling (GET lists the fields)",
    "finite_number": "must be a finite number (NaN and infinity are not accepted)",
}


def validate_instances(
    adapter: TypeAdapter[list[dict[str, Any]]], instances: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Validated instances, or a 400 naming every bad field."""
    try:
        return adapter.validate_python(instances)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            # TypedDict-in-union errors carry the branch name; keep the field path only.
            path = tuple(
                p for p in loc if not (isinstance(p, str) and p.startswith(("float", "str")))
            )
            message = _MESSAGES.get(err["type"], err["msg"])
            errors.append(FieldError(_where(path), message, err["type"]))
        raise bad_request(
            f"{len(errors)} invalid field(s); fix them and retry. GET this URL for the schema.",
            errors,
        ) from None


def parse_envelope(body: Any) -> PredictRequest:
    """The request envelope, or a 400 that names what is wrong with it."""
    return parse_body(
        PredictRequest,
        body,
        "unknown field: the body takes only 'instances'",
        'The body must be {"instances": [{feature: value, ...}, ...]}.',
    )


def parse_body(model: type[M], body: Any, unknown: str, detail: str | None = None) -> M:
    """`body` validated as `model`, or a 400 naming every bad field (`unknown` for extras)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            FieldError(
                field_path(e["loc"]),
                unknown if e["type"] == "extra_forbidden" else e["msg"],
                e["type"],
            )
            for e in exc.errors(include_url=False)
        ]
        raise bad_request(
            detail
            or f"{len(errors)} invalid field(s); fix them and retry. GET this URL for the schema.",
            errors,
        ) from None


def field_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as callers write it: messages[1].content."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body strictly: UTF-8, no duplicate keys, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise bad_request("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}.") from None
