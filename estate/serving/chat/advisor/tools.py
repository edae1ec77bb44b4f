"""The advisor's tools: valuation, drivers, what-if and deal analytics, run in-process.

Both engines call these and only these, on the same `ServingModel`; every number a
reply states comes from one of their results, which are returned as ``facts``.
"""

from __future__ import annotations

from typing import Any

from estate.contract.errors import CannotEstimateError, FieldError, InvalidInputError, RequestError
from estate.contract.instances import validate_instances
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.serving_model import ServingModel
from estate.serving.chat import analytics
from estate.serving.chat.advisor.drivers import baselines, top_drivers
from estate.serving.chat.advisor.vocab import Change
from estate.serving.settings import ChatSettings


def show(value: Any) -> str:
    """A feature value as people write it: 1800, not 1800.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate_property(
    model: ServingModel, features: dict[str, Any], where: str, *, max_field_errors: int
) -> dict[str, Any]:
    """Features checked against the model's schema; `InvalidInputError` names each bad one (up
    to `max_field_errors`) as `where`.X.

    The same instance adapter as the predict function: every row chat predicts (the
    house, a what-if's changed house, the LLM's features) goes through it.
    """
    try:
        (row,) = validate_instances(model.adapter, [features], max_field_errors)
    except InvalidInputError as exc:
        fixed = [
            FieldError(e.field.replace("instances[0]", where, 1), e.message, e.type)
            for e in exc.errors
        ]
        raise InvalidInputError(exc.detail, fixed) from None
    return {k: v for k, v in row.items() if v is not None}


def estimate(
    model: ServingModel, instance: dict[str, Any], where: str = "property"
) -> dict[str, Any]:
    """The model's price and interval for one house; the features it had to impute."""
    (p,) = model.predict([instance])
    out: dict[str, Any] = {
        "price": p.value,
        "imputed": [w["field"] for w in p.warnings if w["code"] == "imputed"],
        "warnings": [w for w in p.warnings if w["code"] != "imputed"],
    }
    bounds = model.interval(p.raw, p.scale)
    if bounds is not None and model.manifest.interval is not None:
        out["interval"] = {
            "lower": bounds[0],
            "upper": bounds[1],
            "level": model.manifest.interval.level,
        }
    require_finite(out, "estimate", out_of_range(p.warnings, where) or _given(instance, where))
    return out


def _given(instance: dict[str, Any], where: str) -> list[FieldError]:
    """Every numeric feature given, as the inputs to name when no warning points at one."""
    return [
        FieldError(f"{where}.{k}", f"{v:g} was given", "input")
        for k, v in instance.items()
        if isinstance(v, float)
    ]


def drivers(
    model: ServingModel, instance: dict[str, Any], k: int = 5, *, max_field_errors: int
) -> dict[str, Any]:
    """The features that move this estimate most, and how that was measured."""
    try:
        method, items, base_price = top_drivers(model, instance, k, max_field_errors)
    except RequestError as exc:
        exc.renamed("instances[0]", "property")
        raise
    out: dict[str, Any] = {"method": method, "items": [d.to_json() for d in items]}
    if base_price is not None:
        out["base_price"] = base_price
    require_finite(out, "drivers", _given(instance, "property"))
    return out


def what_if(
    model: ServingModel,
    instance: dict[str, Any],
    changes: list[tuple[Change, float | str]],
    where: str = "what_if",
    *,
    max_field_errors: int,
) -> dict[str, Any]:
    """Re-predict with the changes applied; before and after in one ONNX call.

    The changed house is validated like any request row, and a change that pushes the
    estimate to infinity (add a billion fireplaces) is a 422 naming `where`.column.
    """
    base = baselines(model)
    changed = dict(instance)
    rows: list[dict[str, Any]] = []
    assumed: list[str] = []
    for change, amount in changes:
        if change.column not in base:
            continue  # a column this model does not have
        current = changed.get(change.column)
        if current is None:
            current = base[change.column]
        if change.column not in instance and change.delta is not None:
            assumed.append(f"{change.label}: not given, started from the typical {show(current)}")
        new: float | str
        if change.copy_from is not None:
            if change.copy_from not in base:
                continue
            new = changed.get(change.copy_from, base[change.copy_from])
        elif change.delta is not None and isinstance(current, float | int):
            new = float(current) + float(amount)
        else:
            new = amount
        rows.append({"feature": change.column, "from": current, "to": new})
        changed[change.column] = new
    changed = validate_property(model, changed, where, max_field_errors=max_field_errors)
    before, after = model.predict([instance, changed])
    outside = {w["field"]: w["message"] for w in after.warnings if w["code"] == "out_of_range"}
    named = [
        FieldError(
            f"{where}.{r['feature']}",
            f"changed to {show(r['to'])}"
            + (f": {outside[r['feature']]}" if r["feature"] in outside else ""),
            "what_if",
        )
        for r in rows
    ]
    result = {
        "changes": rows,
        "before": before.value,
        "after": after.value,
        "difference": after.value - before.value,
        "assumed": assumed,
        "warnings": [w for w in after.warnings if w["code"] != "imputed"],
    }
    require_finite(result, "what_if", named + out_of_range(before.warnings, "property"))
    return result


#: Deal terms (analytics names) as the request's ``deal`` fields call them.
_REQUEST_NAMES = {"price": "asking_price", "annual_rate": "rate"}


def deal(
    settings: ChatSettings,
    value: dict[str, Any],
    given: dict[str, float],
    down_fraction: float | None = None,
) -> dict[str, Any]:
    """Analytics of buying this house to rent it out; every assumption is listed.

    Terms the analytics cannot use (and figures that overflow) are a 422 naming the
    ``deal`` fields, never a ValueError or an infinity in the answer.
    """
    estimate_price = float(value["price"])
    asking = given.get("asking_price")
    price = asking if asking is not None else estimate_price
    assumed: list[str] = []
    if asking is None:
        if not estimate_price >= analytics.MIN_PRICE:
            raise CannotEstimateError(
                f"The model's estimate ({estimate_price:g}) is not a price the deal can be "
                "worked out on; send the asking price.",
                [FieldError("deal.asking_price", "needed: the estimate is not a price", "missing")],
            )
        assumed.append("price: no asking price given, used the model's estimate")
    rent = given.get("monthly_rent")
    if rent is None:
        rent = estimate_price / settings.chat_price_to_rent / 12
        assumed.append(
            f"rent: not given; assumed a price-to-rent ratio of {settings.chat_price_to_rent:g} "
            "(annual rent = estimate / ratio); tell me the real rent for a better answer"
        )

    def pick(key: str, default: float, label: str, scale: float = 1.0) -> float:
        if key in given:
            return given[key] * scale
        assumed.append(label)
        return default

    down_default = down_fraction if down_fraction is not None else settings.chat_down_payment
    down = pick("down_payment", price * down_default, f"down payment: {down_default:.0%}")
    if down_fraction is not None:
        assumed.pop()
    terms = analytics.DealTerms(
        price=price,
        monthly_rent=rent,
        down_payment=down,
        annual_rate=pick("rate", settings.chat_rate, f"rate: {settings.chat_rate:.2%}", 0.01),
        term_years=int(
            pick("term_years", settings.chat_term_years, f"term: {settings.chat_term_years} years")
        ),
        taxes=pick(
            "taxes",
            price * settings.chat_tax_rate,
            f"taxes: {settings.chat_tax_rate:.2%} of the price per year",
        ),
        insurance=pick(
            "insurance",
            price * settings.chat_insurance_rate,
            f"insurance: {settings.chat_insurance_rate:.2%} of the price per year",
        ),
        hoa=pick("hoa", 0.0, "HOA: none"),
        vacancy=pick(
            "vacancy",
            settings.chat_vacancy,
            f"vacancy: {settings.chat_vacancy:.0%} of the rent",
            0.01,
        ),
        maintenance=pick(
            "maintenance",
            settings.chat_maintenance,
            f"maintenance: {settings.chat_maintenance:.0%} of the rent",
            0.01,
        ),
        closing_costs=given.get("closing_costs", 0.0),
    )
    out: dict[str, Any] = {
        "inputs": {
            "price": terms.price,
            "monthly_rent": terms.monthly_rent,
            "down_payment": terms.down_payment,
            "rate": terms.annual_rate,
            "term_years": terms.term_years,
            "taxes": terms.taxes,
            "insurance": terms.insurance,
            "hoa": terms.hoa,
            "vacancy": terms.vacancy,
            "maintenance": terms.maintenance,
            "closing_costs": terms.closing_costs,
        },
        "assumed": assumed,
        "defaults": {
            "price_to_rent": settings.chat_price_to_rent,
            "down_payment": down_default,
            "rate": settings.chat_rate,
            "term_years": settings.chat_term_years,
            "tax_rate": settings.chat_tax_rate,
            "insurance_rate": settings.chat_insurance_rate,
            "vacancy": settings.chat_vacancy,
            "maintenance": settings.chat_maintenance,
        },
        "analysis": _analyze(terms),
    }
    interval = value.get("interval")
    if asking is not None:
        out["asking_price"] = asking
        if estimate_price >= analytics.MIN_PRICE:  # a ratio over a price, not over ~0
            out["asking_vs_estimate"] = (asking - estimate_price) / estimate_price
            if interval is not None:
                out["verdict"] = analytics.price_verdict(
                    asking, interval["lower"], interval["upper"]
                )
                out["interval"] = interval
    require_finite(out, "deal", [FieldError(f"deal.{k}", "given", "input") for k in given])
    return out


def _analyze(terms: analytics.DealTerms) -> dict[str, Any]:
    """The analytics' figures, or a 422 naming each deal field they could not use."""
    try:
        return analytics.analyze(terms).to_json()
    except analytics.DealError as exc:
        errors = [
            FieldError(f"deal.{_REQUEST_NAMES.get(term, term)}", problem, "deal_term")
            for term, problem in exc.problems.items()
        ]
        raise CannotEstimateError(
            "The deal cannot be worked out on these terms; fix the fields below.", errors
        ) from None
