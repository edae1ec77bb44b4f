"""What an instance is: the validator built from the manifest's input schema, and its errors.

The instance type is built at load time from the manifest's input schema, so the JSON
Schema served on ``GET`` and the checks made on ``POST`` can never drift apart. Serving
(predict, explain, chat) and anything else that takes raw rows validate them here; a
columnar body (feature → one value per row) is checked here too, its errors named as the
caller wrote them (``inputs.<feature>[i]``).

Error reports are bounded whatever the rows hold: unknown keys are counted in C before
pydantic sees them (one object of 500,000 unknown keys would otherwise become 500,000
errors), instances are validated in chunks of a few thousand cells, and only the first
`max_field_errors` errors are turned into `FieldError` objects; the rest are counted
(``errors_omitted`` in the answer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from itertools import islice
from typing import Annotated, Any, NotRequired

from pydantic import (
    AllowInfNan,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from estate.contract.bundle import InputSchema
from estate.contract.errors import FieldError, InvalidInputError

#: Field errors built per call unless the caller says otherwise (``ESTATE_MAX_FIELD_ERRORS``).
MAX_FIELD_ERRORS = 50
MAX_STRING = 200
#: Longest key (or header value) quoted in an error: a 1 MB key must not make a 1 MB message.
MAX_KEY_SHOWN = 80
#: Cells (rows x features) pydantic validates per call, which bounds one call's errors.
CHUNK_CELLS = 4096
Number = Annotated[float, Strict(), AllowInfNan(False)]
Category = Annotated[str, StringConstraints(max_length=MAX_STRING)]


def _describe(parts: list[str]) -> str:
    """Sentences joined: a config's description may come without its full stop."""
    return " ".join(p if p.endswith((".", "?", "!")) else p + "." for p in parts if p)


def _used_by(schema: InputSchema) -> dict[str, str]:
    """Input name → the sentence naming the derived features that read it."""
    readers: dict[str, list[str]] = {}
    for d in schema.derived_features():
        for name in d.inputs:
            readers.setdefault(name, []).append(d.name)
    return {n: f"The model also derives {', '.join(ds)} from it." for n, ds in readers.items()}


def _derived_doc(schema: InputSchema) -> dict[str, Any]:
    """The instance schema's note of the features the graph computes from the fields."""
    rules = "; ".join(f"{d.name} = {d.formula}" for d in schema.derived_features())
    return {
        "description": "Raw fields of one property. The model also computes, from them "
        f"(never send these): {rules}. A missing input counts as its training median; a "
        "result that is not finite (a zero denominator) as the derived feature's median.",
        "x-derived": [
            {"name": d.name, "formula": d.formula, "inputs": list(d.inputs)}
            | ({"label": d.label} if d.label else {})
            | ({"unit": d.unit} if d.unit else {})
            for d in schema.derived_features()
        ],
    }


def instance_adapter(schema: InputSchema) -> TypeAdapter[list[dict[str, Any]]]:
    """A validator for a list of instances: known fields only, right types, finite numbers."""
    fields: dict[str, Any] = {}
    used_by = _used_by(schema)
    for num in schema.numeric:
        extra: Any = {"x-training-min": num.min, "x-training-max": num.max, "x-impute": num.impute}
        unit = f" ({num.unit})" if num.unit else ""
        desc = _describe(
            [
                num.description,
                f"Number{unit}; training range {num.min:g}…{num.max:g}.",
                used_by.get(num.name, ""),
            ]
        )
        fields[num.name] = NotRequired[  # type: ignore[valid-type]
            Annotated[
                Number | None,
                Field(title=num.label, description=desc, json_schema_extra=extra),
            ]
        ]
    for cat in schema.categorical:
        extra = {"x-categories": list(cat.categories), "x-impute": cat.impute}
        kind = "Category; known values in x-categories."
        if cat.ordinal is not None:
            extra["x-ordinal"] = list(cat.ordinal)
            kind = (
                f"Ordered category, lowest first: {' < '.join(cat.ordinal)} (missing below "
                "all; the model reads the level, x-ordinal)."
            )
        desc = _describe([cat.description, kind, used_by.get(cat.name, "")])
        fields[cat.name] = NotRequired[  # type: ignore[valid-type]
            Annotated[
                Category | None,
                Field(title=cat.label, description=desc, json_schema_extra=extra),
            ]
        ]
    instance = TypedDict("Instance", fields)  # type: ignore[misc]
    config = ConfigDict(
        extra="forbid",
        coerce_numbers_to_str=True,
        title="Instance",
        json_schema_extra=_derived_doc(schema) if schema.derived_features() else None,
    )
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
        text += f"[{part}]" if isinstance(part, int) else f".{shown(part)}"
    return text


def shown(text: str) -> str:
    """`text` cut to `MAX_KEY_SHOWN` characters for quoting in an error message."""
    return text if len(text) <= MAX_KEY_SHOWN else text[:MAX_KEY_SHOWN] + "…"


FIX = "fix them and retry. GET this URL for the schema."
_MESSAGES = {
    "extra_forbidden": "unknown field: remove it or check the spelling (GET lists the fields)",
    "finite_number": "must be a finite number (NaN and infinity are not accepted)",
}


@lru_cache(maxsize=16)
def known_fields(adapter: TypeAdapter[list[dict[str, Any]]]) -> frozenset[str]:
    """The field names an instance may have (from the validator's own schema)."""
    return frozenset(instance_json_schema(adapter).get("properties", {}))


class ErrorList:
    """Field errors up to a cap, and a count of all of them (the rest are not built)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[FieldError] = []
        self.total = 0

    @property
    def room(self) -> int:
        return self.limit - len(self.kept)

    def add(self, found: int, errors: Iterator[FieldError]) -> None:
        """Count `found` errors and keep as many of `errors` as fit."""
        self.total += found
        if self.room > 0:
            self.kept.extend(islice(errors, self.room))

    def add_validation(
        self, exc: ValidationError, to_error: Callable[[ErrorDetails], FieldError]
    ) -> None:
        """A pydantic error: counted cheaply, converted only while there is room."""
        found = exc.error_count()
        if self.room > 0:
            self.add(found, (to_error(e) for e in exc.errors(include_url=False)))
        else:
            self.total += found

    def problem(self, detail: str) -> InvalidInputError:
        return InvalidInputError(detail, self.kept, errors_omitted=self.total - len(self.kept))


def _unknown_keys(row: dict[str, Any], known: frozenset[str]) -> Iterator[str]:
    return (k for k in row if k not in known)


def _instance_error(offset: int) -> Callable[[ErrorDetails], FieldError]:
    def convert(err: ErrorDetails) -> FieldError:
        loc = err["loc"]
        # TypedDict-in-union errors carry the branch name; keep the field path only.
        path = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("float", "str"))))
        if path and isinstance(path[0], int):
            path = (path[0] + offset, *path[1:])
        message = _MESSAGES.get(err["type"], err["msg"])
        return FieldError(_where(path), message, err["type"])

    return convert


def validate_instances(
    adapter: TypeAdapter[list[dict[str, Any]]], instances: Sequence[Any], max_field_errors: int
) -> list[dict[str, Any]]:
    """Validated instances, or `InvalidInputError` naming the first `max_field_errors` bad fields
    and counting all of them.

    Unknown keys are found with C-level lookups (``dict.keys() <= known``) and dropped
    before pydantic runs, so their number costs no memory; pydantic then sees at most
    `CHUNK_CELLS` cells per call. A valid batch takes the same path at the same cost.
    """
    known = known_fields(adapter)
    errors = ErrorList(max_field_errors)
    rows: list[Any] = list(instances)
    for i, row in enumerate(rows):
        if isinstance(row, dict) and not row.keys() <= known:
            unknown = sum(1 for _ in _unknown_keys(row, known))
            errors.add(
                unknown,
                (
                    FieldError(_where((i, k)), _MESSAGES["extra_forbidden"], "extra_forbidden")
                    for k in _unknown_keys(row, known)
                ),
            )
            rows[i] = {k: v for k, v in row.items() if k in known}
    step = max(1, CHUNK_CELLS // max(1, len(known)))
    validated: list[dict[str, Any]] = []
    for start in range(0, len(rows), step):
        try:
            validated.extend(adapter.validate_python(rows[start : start + step]))
        except ValidationError as exc:
            errors.add_validation(exc, _instance_error(start))
    if errors.total:
        raise errors.problem(f"{errors.total} invalid field(s); {FIX}")
    return validated


def require_values(rows: list[dict[str, Any]]) -> None:
    """`InvalidInputError` for the first validated instance with no feature value at all: an
    all-imputed row is an answer about nothing (predict and explain refuse it alike)."""
    for i, row in enumerate(rows):
        if all(v is None for v in row.values()):
            raise InvalidInputError(
                f"instances[{i}] has no feature values; send at least one "
                "(GET this URL for the list)."
            )


_UNKNOWN_COLUMN = "unknown feature: remove the column or check the spelling (GET lists them)"
_ROW_FIELD = re.compile(r"instances\[(\d+)\]\.(.*)", re.DOTALL)


def column_rows(columns: dict[str, list[Any]], known: frozenset[str], max_field_errors: int) -> int:
    """The row count of a columnar batch, or `InvalidInputError` naming its unknown names,
    an empty batch and its columns of another length (``inputs.<feature>``)."""
    errors = ErrorList(max_field_errors)
    unknown = [name for name in columns if name not in known]
    errors.add(
        len(unknown),
        (FieldError(f"inputs.{shown(n)}", _UNKNOWN_COLUMN, "extra_forbidden") for n in unknown),
    )
    lengths = {name: len(values) for name, values in columns.items()}
    rows = max(lengths.values(), default=0)
    if not columns or rows == 0:
        errors.add(1, iter([FieldError("inputs", "send at least one row", "too_short")]))
    short = [n for n, size in lengths.items() if size != rows]
    errors.add(
        len(short),
        (
            FieldError(
                f"inputs.{shown(n)}",
                f"has {lengths[n]} values where the longest column has {rows}: "
                "send one value per row in every column (null where missing)",
                "column_length",
            )
            for n in short
        ),
    )
    if errors.total:
        raise errors.problem(f"{errors.total} invalid field(s); {FIX}")
    return rows


def validate_columns(
    adapter: TypeAdapter[list[dict[str, Any]]],
    columns: dict[str, list[Any]],
    max_field_errors: int,
) -> list[dict[str, Any]]:
    """The validated rows ``{feature: columns[feature][i]}`` of a batch `column_rows`
    passed, or `InvalidInputError` naming the bad cells as ``inputs.<feature>[i]`` (and
    the first row with no feature value)."""
    names = list(columns)
    instances = [
        dict(zip(names, cells, strict=True)) for cells in zip(*columns.values(), strict=True)
    ]
    try:
        checked = validate_instances(adapter, instances, max_field_errors)
    except InvalidInputError as exc:
        raise _columnar(exc) from None
    for i, row in enumerate(checked):
        if all(v is None for v in row.values()):
            raise InvalidInputError(
                f"Row {i} of inputs has no feature values (every column is null there); "
                "send at least one (GET this URL for the list)."
            )
    return checked


def columnar_field(field_name: str) -> str:
    """A row's field as a columnar body's caller wrote it: ``instances[3].Lot.Area`` →
    ``inputs.Lot.Area[3]`` (any other name unchanged)."""
    match = _ROW_FIELD.fullmatch(field_name)
    return f"inputs.{match[2]}[{match[1]}]" if match else field_name


def _columnar(exc: InvalidInputError) -> InvalidInputError:
    """The validator's errors on rows built from columns, named as the caller wrote them
    (`columnar_field`)."""
    errors = [FieldError(columnar_field(e.field), e.message, e.type) for e in exc.errors]
    return InvalidInputError(exc.detail, errors, exc.errors_omitted)
