"""Request bodies: strict JSON parsing, the envelopes of the functions, the pre-checks.

Each envelope is a pydantic model (the source of the OpenAPI document, with the answers
in `estate.serving.responses`); the instances inside are validated against the model by
`estate.contract.instances`. Errors are domain errors (`InvalidInputError`,
`TooLargeError`), which `estate.serving.problems` turns into problem+json. At most
``ESTATE_MAX_FIELD_ERRORS`` field errors are built per request; the rest are counted.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import from_json

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


# -- chat ----------------------------------------------------------------------------------

Money = Annotated[float, AllowInfNan(False), Field(ge=0, le=1e9)]
#: A price under a dollar is not a price: yields over it explode (12 * rent / 5e-324).
Price = Annotated[float, AllowInfNan(False), Field(ge=1, le=1e9)]
Percent = Annotated[float, AllowInfNan(False), Field(ge=0, le=100)]
#: analyze's terms take JSON numbers only: not "6.5" (a string), not true (a bool).
StrictMoney = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=1e9)]
StrictPrice = Annotated[float, Strict(), AllowInfNan(False), Field(ge=1, le=1e9)]
StrictPercent = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=100)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Closed):
    """One turn of the conversation; the client keeps the history and sends it all."""

    role: Literal["user", "assistant"]
    content: str


class DealInput(_Closed):
    """What the client knows about the deal; anything left out is assumed and said so."""

    asking_price: Price | None = Field(None, description="Asking price, dollars (at least 1).")
    monthly_rent: Money | None = Field(None, description="Expected rent, dollars per month.")
    down_payment: Money | None = Field(None, description="Down payment, dollars.")
    rate: Percent | None = Field(None, description="Mortgage rate, percent per year (6.5).")
    term_years: Annotated[int, Field(ge=1, le=50)] | None = Field(
        None, description="Mortgage term, years."
    )
    taxes: Money | None = Field(None, description="Property tax, dollars per year.")
    insurance: Money | None = Field(None, description="Insurance, dollars per year.")
    hoa: Money | None = Field(None, description="HOA / condo fees, dollars per month.")
    vacancy: Percent | None = Field(None, description="Vacancy, percent of the rent.")
    maintenance: Percent | None = Field(None, description="Maintenance, percent of the rent.")
    closing_costs: Money | None = Field(None, description="Closing costs, dollars.")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ChatRequest(_Closed):
    """``{"messages": [...], "property": {...}, "deal": {...}}``; the last message is the user's."""

    messages: list[Message] = Field(min_length=1)
    property: dict[str, Any] | None = Field(
        None, description="Raw model features you know (GET the predict function for the list)."
    )
    deal: DealInput | None = None


# -- analyze -------------------------------------------------------------------------------


class DealTermsInput(_Closed):
    """The deal's terms; each one left out takes its documented default, and the answer's
    ``assumptions`` say which were given and which defaulted (and by what rule)."""

    asking_price: StrictPrice | None = Field(
        None, description="Asking price, dollars (at least 1). Default: the model's estimate."
    )
    monthly_rent: StrictMoney | None = Field(
        None,
        description="Expected rent, dollars per month. Default: estimate / price-to-rent "
        "ratio (ESTATE_DEAL_PRICE_TO_RENT, 15) / 12.",
    )
    down_payment: StrictMoney | None = Field(
        None, description="Down payment, dollars. Default: down_payment_percent of the price."
    )
    down_payment_percent: StrictPercent | None = Field(
        None,
        description="Down payment as a percent of the price (20), instead of down_payment. "
        "Default: ESTATE_DEAL_DOWN_PAYMENT (20 %).",
    )
    interest_rate: StrictPercent | None = Field(
        None,
        description="Mortgage rate, percent per year (6.5 means 6.5 %). Default: "
        "ESTATE_DEAL_RATE (6.5 %).",
    )
    term_years: Annotated[int, Field(ge=1, le=50, strict=True)] | None = Field(
        None, description="Mortgage term, whole years. Default: ESTATE_DEAL_TERM_YEARS (30)."
    )
    taxes: StrictMoney | None = Field(
        None,
        description="Property tax, dollars per year. Default: ESTATE_DEAL_TAX_RATE (1.5 %) of "
        "the price.",
    )
    insurance: StrictMoney | None = Field(
        None,
        description="Insurance, dollars per year. Default: ESTATE_DEAL_INSURANCE_RATE (0.5 %) "
        "of the price.",
    )
    hoa: StrictMoney | None = Field(
        None, description="HOA / condo fees, dollars per month. Default: none (0)."
    )
    vacancy: StrictPercent | None = Field(
        None, description="Vacancy, percent of the rent. Default: ESTATE_DEAL_VACANCY (5 %)."
    )
    maintenance: StrictPercent | None = Field(
        None,
        description="Maintenance, percent of the rent. Default: ESTATE_DEAL_MAINTENANCE (8 %).",
    )
    closing_costs: StrictMoney | None = Field(
        None, description="Closing costs, dollars (counted as cash invested). Default: none (0)."
    )

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AnalyzeRequest(_Closed):
    """``{"property": {...}, "terms": {...}, "comparables": k}``: one house, one deal."""

    property: dict[str, Any] = Field(
        description="The house: raw model features by name, as one predict instance "
        "(GET the function for the list and ranges); missing features are imputed."
    )
    terms: DealTermsInput = Field(
        default_factory=DealTermsInput,
        description="The deal's terms; anything left out takes its default.",
    )
    comparables: Annotated[int, Field(ge=0, le=20, strict=True)] = Field(
        5,
        description="How many comparable sales to return, 0 to 20 (as predict's "
        "parameters.comparables); a bundle without a table of sales has none and says why.",
    )


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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = dict(pairs)
    if len(seen) == len(pairs):
        return seen
    found: set[str] = set()
    for key, _ in pairs:
        if key in found:
            raise ValueError(f"duplicate key {shown(key)!r}")
        found.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a duplicate")


def _no_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """True when `parsed` (the plain parse of `raw`) provably lost no duplicate key, checked
    with C-level counts, so a batch skips the slow per-object duplicate hook.

    Only for the shapes batches come in: an object whose values are scalars, arrays of
    scalars, or arrays / objects of such objects (``{"instances": [{...}, ...]}``,
    ``{"columns": {name: [...]}}``). If the text has no more ``{`` than the objects
    found, those are all its objects; its ``:`` count (strings included) bounds its
    key-value pairs from above and the keys kept bound them from below, so equal counts
    mean every pair was kept. Anything else (a colon or brace inside a string, other
    shapes) returns False and the strict parse decides.
    """
    if type(parsed) is not dict:
        return False
    objects, keys = 1, len(parsed)
    for value in parsed.values():
        if type(value) is list:
            dicts = [v for v in value if type(v) is dict]
        elif type(value) is dict:
            dicts = [value]
            dicts.extend(v for v in value.values() if type(v) is dict)
        else:
            continue
        objects += len(dicts)
        keys += sum(map(len, dicts))
    return raw.count(b"{") == objects and raw.count(b":") == keys


def count_json_values(raw: bytes) -> int:
    """An upper bound on the values a JSON text holds, counted in C without parsing.

    Every value after the first in an array or object follows a comma, and every array
    or object opens with a bracket, so ``commas + brackets + 1`` bounds the Python
    objects the parser would build (commas inside strings only make it larger).
    """
    return raw.count(b",") + raw.count(b"{") + raw.count(b"[") + 1


_UNPARSED = object()


def _fast_parse(raw: bytes) -> Any:
    """`raw` parsed by pydantic's Rust JSON parser (about twice as fast as ``json.loads``
    on a 1,000-row batch), or `_UNPARSED` when it refuses the text.

    Where both parsers read a text they build the same values (numbers to the last bit:
    both round correctly; NaN and Infinity literals alike; duplicate keys keep the last
    value, so `_no_duplicate_keys` still decides). It refuses some texts ``json.loads``
    reads (lone surrogate escapes, nesting deeper than 200) and every invalid one: those
    take the ``json.loads`` path, whose answer (a value, or its 400 message) is the
    same as ever.
    """
    try:
        return from_json(raw)
    except ValueError:
        return _UNPARSED


def parse_json(raw: bytes, max_values: int | None = None) -> Any:
    """Decode a JSON body strictly: UTF-8, no duplicate keys, bounded nesting and, with
    `max_values`, a bounded number of values (413 before any parsing work)."""
    if max_values is not None:
        values = count_json_values(raw)
        if values > max_values:
            raise TooLargeError(
                f"The body holds up to {values} JSON values (commas and brackets counted "
                f"before parsing); the limit is {max_values}. Split the batch, or send "
                "only the fields the model reads."
            )
    plain = _fast_parse(raw)
    if plain is not _UNPARSED and _no_duplicate_keys(raw, plain):
        return plain
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        if plain is _UNPARSED:  # not read by the fast parser: Python's decides, as before
            plain = json.loads(text)
            if _no_duplicate_keys(raw, plain):
                return plain
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise InvalidInputError("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidInputError(f"The body is not valid JSON: {exc}.") from None
