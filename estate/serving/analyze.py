"""The ``analyze`` function: one house and one deal in, valuation and deal analysis out.

``POST {"property": {...}, "terms": {...}, "comparables": k}`` → the model's valuation
and interval, comparable sales (when the bundle carries them), and the deal worked out
by `estate.runtime.deal.work_out` (the same core chat's deal answers use): yields, cap
rate, NOI, cash flow, DSCR, cash-on-cash, break-even rent, a verdict, and every term
used, marked ``given`` or ``default`` with the default's rule. ``GET`` → health, model,
the property's JSON Schema, and whether this bundle can be analyzed (a price model).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flask

from estate.contract.errors import (
    FieldError,
    InvalidInputError,
    UnsupportedModelError,
)
from estate.contract.instances import instance_json_schema, require_values, validate_instances
from estate.runtime import deal as deal_core
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.packing import Packed
from estate.runtime.serving_model import ServingModel, model_info
from estate.serving import predlog
from estate.serving.advice_requests import AnalyzeRequest, DealTermsInput
from estate.serving.endpoint import serve
from estate.serving.function_settings import AnalyzeSettings
from estate.serving.requests import parse_body

#: Request term → (`estate.runtime.deal` term, factor from the request's unit to the core's).
TERMS: dict[str, tuple[str, float]] = {
    "asking_price": ("price", 1.0),
    "monthly_rent": ("monthly_rent", 1.0),
    "down_payment": ("down_payment", 1.0),
    "interest_rate": ("annual_rate", 0.01),
    "term_years": ("term_years", 1.0),
    "taxes": ("taxes", 1.0),
    "insurance": ("insurance", 1.0),
    "hoa": ("hoa", 1.0),
    "vacancy": ("vacancy", 0.01),
    "maintenance": ("maintenance", 0.01),
    "closing_costs": ("closing_costs", 1.0),
}
_REQUEST_NAME = {core: name for name, (core, _) in TERMS.items()}
#: Each term's unit, as the request gives it and the answer's assumptions state it.
UNITS = {
    "asking_price": "dollars",
    "monthly_rent": "dollars per month",
    "down_payment": "dollars",
    "interest_rate": "percent per year",
    "term_years": "years",
    "taxes": "dollars per year",
    "insurance": "dollars per year",
    "hoa": "dollars per month",
    "vacancy": "percent of the rent",
    "maintenance": "percent of the rent",
    "closing_costs": "dollars",
}
_PERCENT_TERMS = ("interest_rate", "vacancy", "maintenance", "down_payment_percent")


def supported(model: ServingModel) -> str | None:
    """None when `model` can be analyzed, else why not (a deal needs a price)."""
    m = model.manifest
    if m.task != "regression":
        return (
            f"analyze needs a price model; {m.name} is a {m.task.replace('_', ' ')} model "
            f"(it predicts {m.output.name!r}). Serve a regression bundle that predicts a "
            "price (e.g. ESTATE_MODEL_NAME=ames), or use predict for this one."
        )
    return None


def describe(model: ServingModel) -> dict[str, Any]:
    """Health, model, the property schema and whether analyze applies (the GET answer)."""
    reason = supported(model)
    return {
        "status": "ok",
        "model": {**model_info(model), "task": model.manifest.task},
        "analyze": {"supported": reason is None, "reason": reason},
        "instance_schema": instance_json_schema(model.adapter),
        "terms_schema": DealTermsInput.model_json_schema(),
    }


def analyze_body(model: ServingModel, body: Any, settings: AnalyzeSettings) -> dict[str, Any]:
    """Validate a request and answer it: valuation, comparables and the deal.

    A 400 names every bad field at once: the house's too when only the terms are wrong.
    """
    limit = settings.max_field_errors
    try:
        request = parse_body(
            AnalyzeRequest,
            body,
            "unknown field: the body takes 'property', 'terms' and 'comparables'",
            'The body must be {"property": {feature: value, ...}, "terms": {...}}; '
            "fix the fields below.",
            max_field_errors=limit,
        )
    except InvalidInputError as exc:
        house = body.get("property") if isinstance(body, dict) else None
        if isinstance(house, dict) and supported(model) is None and len(exc.errors) < limit:
            try:
                _validated_property(model, house, limit - len(exc.errors))
            except InvalidInputError as more:
                exc.errors += more.errors
                exc.errors_omitted += more.errors_omitted
        raise
    reason = supported(model)
    if reason is not None:
        raise UnsupportedModelError(reason)
    check_conflicts(request)
    instance = _validated_property(model, request.property, settings.max_field_errors)
    packed = model.pack_flags([instance])  # predict's packing, predict's call
    warnings = model.row_warnings(packed, 0)
    prediction, raw, scale = model.run(packed.numeric, packed.categorical)
    price = float(prediction[0])
    bounds = model.interval(float(raw[0]), None if scale is None else float(scale[0]))
    valuation: dict[str, Any] = {"price": price, "interval": None, "warnings": warnings}
    if bounds is not None and model.manifest.interval is not None:
        level = model.manifest.interval.level
        valuation["interval"] = {"lower": bounds[0], "upper": bounds[1], "level": level}
    require_finite(valuation, "valuation", out_of_range(warnings, "property"))
    answer = {
        "valuation": valuation,
        "comparables": comparables(model, packed, request.comparables),
        "deal": deal(valuation, request.terms, settings.deal_defaults()),
        "model": model_info(model),
    }
    given = request.terms.given()
    require_finite(answer, "answer", [FieldError(f"terms.{k}", "given", "input") for k in given])
    return answer


def valuation_logged(output: str, body: Any, answer: dict[str, Any]) -> predlog.Logged:
    """An analysis as prediction logs hold it: the property as sent and its valuation
    under the model's output name, as predict logs it (``estate monitor`` reads both);
    neither the deal terms nor the comparables."""
    valuation = answer["valuation"]
    prediction: dict[str, Any] = {output: valuation["price"]}
    if valuation["interval"] is not None:
        prediction["interval"] = valuation["interval"]
    prediction["warnings"] = valuation["warnings"]
    return predlog.Logged(
        model=answer["model"], predictions=[prediction], instances=[body["property"]]
    )


def check_conflicts(request: AnalyzeRequest) -> None:
    """400 for terms that contradict each other."""
    errors = []
    if request.terms.down_payment is not None and request.terms.down_payment_percent is not None:
        message = "give down_payment (dollars) or down_payment_percent, not both"
        errors += [
            FieldError("terms.down_payment", message, "conflict"),
            FieldError("terms.down_payment_percent", message, "conflict"),
        ]
    if errors:
        raise InvalidInputError(f"{len(errors)} invalid field(s); fix them and retry.", errors)


def _validated_property(
    model: ServingModel, features: dict[str, Any], max_field_errors: int
) -> dict[str, Any]:
    """The house checked like a predict instance; its bad fields named ``property.X``."""
    try:
        rows = validate_instances(model.adapter, [features], max_field_errors)
        require_values(rows)
    except InvalidInputError as exc:
        exc.renamed("instances[0]", "property")
        if not exc.errors:  # no feature value at all: name the house itself
            exc.errors = [
                FieldError("property", "has no feature values; send at least one", "empty")
            ]
        raise
    return rows[0]


def comparables(model: ServingModel, packed: Packed, k: int) -> dict[str, Any]:
    """The `k` most similar training sales (`ServingModel.comparables`, the search predict's
    ``parameters.comparables`` runs: unsent features stay out of the distance), or why
    this bundle has none."""
    reason = model.no_comparables_reason
    if reason is not None:
        return {"available": False, "sales": [], "note": reason}
    if k == 0:
        return {"available": True, "sales": [], "note": "none asked for (comparables: 0)"}
    (sales,) = model.comparables(packed.numeric, packed.categorical, k, packed.missing_category)
    return {"available": True, "sales": sales, "note": None}


def deal(
    valuation: dict[str, Any], terms: DealTermsInput, defaults: deal_core.DealDefaults
) -> dict[str, Any]:
    """The deal on `terms` (request units), worked out by the core chat uses too."""
    given = terms.given()
    core = {TERMS[k][0]: v * TERMS[k][1] for k, v in given.items() if k in TERMS}
    fraction = given.get("down_payment_percent")
    interval = valuation["interval"]
    bounds = None if interval is None else (interval["lower"], interval["upper"])
    try:
        worked = deal_core.work_out(
            valuation["price"],
            bounds,
            core,
            defaults,
            None if fraction is None else fraction / 100,
        )
    except deal_core.DealError as exc:
        raise exc.as_problem("terms", _REQUEST_NAME, "terms.asking_price") from None
    assumptions = {}
    for a in worked.assumptions:
        name = _REQUEST_NAME[a.term]
        value = a.value
        if a.source == "given" and name in given:
            value = given[name]  # as sent, in the request's unit
        elif TERMS[name][1] != 1.0:
            value = round(a.value / TERMS[name][1], 12)  # the default, back in percent
        assumptions[name] = {
            "value": value,
            "unit": UNITS[name],
            "source": a.source,
            "basis": a.basis,
        }
    return {
        "analysis": {
            **worked.analysis.to_json(),
            "annual_cash_flow": 12 * worked.analysis.monthly_cash_flow,
        },
        "verdict": verdict(worked),
        "assumptions": assumptions,
        "warnings": _unit_warnings(given),
    }


def verdict(worked: deal_core.Deal) -> dict[str, Any]:
    """The asking price against the interval, the sign of the cash flow, in one sentence."""
    a = worked.analysis
    flow = round(a.monthly_cash_flow, 2)
    cash_flow = "positive" if flow > 0 else "negative" if flow < 0 else "break_even"
    parts = []
    if worked.verdict is not None and worked.interval is not None:
        lower, upper = worked.interval
        parts.append(
            f"The asking price {_money(worked.terms.price)} is {worked.verdict} the model's "
            f"interval ({_money(lower)} to {_money(upper)})"
        )
    elif worked.asking_price is None:
        parts.append(f"No asking price: priced at the model's estimate {_money(worked.estimate)}")
    flows = {"positive": "makes", "negative": "loses", "break_even": "breaks even at"}
    text = f"the deal {flows[cash_flow]} {_money(abs(a.monthly_cash_flow))} a month"
    if cash_flow == "break_even":
        text = "the deal breaks even"
    if a.dscr is not None:
        text += f" (DSCR {a.dscr:.2f})"
    parts.append(text)
    summary = "; ".join(parts)
    return {
        "price": worked.verdict,
        "asking_vs_estimate": worked.asking_vs_estimate,
        "cash_flow": cash_flow,
        "summary": summary[0].upper() + summary[1:] + ".",
    }


def _money(x: float) -> str:
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def _unit_warnings(given: dict[str, Any]) -> list[dict[str, str]]:
    """Percent terms under 1 were probably sent as fractions (0.065 for 6.5 %): say so."""
    return [
        {
            "field": f"terms.{name}",
            "code": "percent_under_one",
            "message": f"{given[name]:g} is read as {given[name]:g} %; for "
            f"{given[name] * 100:g} % send {given[name] * 100:g} (terms are in percent)",
        }
        for name in _PERCENT_TERMS
        if name in given and 0 < given[name] < 1
    ]


def entry_point(
    settings: AnalyzeSettings | None = None,
) -> Callable[[flask.Request], flask.Response]:
    """The ``analyze`` function, its settings read once (main.py resolves it on first use)."""
    settings = settings or AnalyzeSettings()

    def answer(model: ServingModel, request: flask.Request, body: Any) -> dict[str, Any]:
        """The analysis; its valuation logged like a one-instance predict (predlog)."""
        logged = partial(valuation_logged, model.manifest.output.name)
        return predlog.observe(
            request, body, lambda b: analyze_body(model, b, settings), settings, logged
        )

    def analyze(request: flask.Request) -> flask.Response:
        """HTTP entry point (functions-framework target ``analyze``)."""
        return serve(request, describe, answer, settings, settings.analyze_max_request_bytes)

    return analyze
