"""The advisor's tools: valuation, drivers, what-if and deal analytics, run in-process.

Both engines call these and only these, on the same `ServingModel`; every number a
reply states comes from one of their results, which are returned as ``facts``.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from estate.contract.errors import FieldError, InvalidInputError, RequestError
from estate.contract.instances import validate_instances
from estate.runtime import deal as deal_core
from estate.runtime.finite import out_of_range, require_finite
from estate.runtime.serving_model import ServingModel
from estate.serving.chat.advisor.drivers import baselines, top_drivers
from estate.serving.chat.advisor.vocab import Change
from estate.serving.function_settings import ChatSettings


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
        "warnings": labelled(model, [w for w in p.warnings if w["code"] != "imputed"]),
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


def labelled(model: ServingModel, warnings: list[dict[str, str]]) -> list[dict[str, str]]:
    """Input warnings with the feature's readable label (the config's, from the manifest)
    beside its raw name, so a reply says "Living area", never "X1st.Flr.SF"."""
    return [{**w, "label": model.labels.get(w["field"], w["field"])} for w in warnings]


def _given(instance: dict[str, Any], where: str) -> list[FieldError]:
    """Every numeric feature given, as the inputs to name when no warning points at one."""
    return [
        FieldError(f"{where}.{k}", f"{v:g} was given", "input")
        for k, v in instance.items()
        if isinstance(v, float)
    ]


def comparables(model: ServingModel, instance: dict[str, Any], k: int = 5) -> dict[str, Any]:
    """The `k` training sales most like this house (price, date, distance, differences),
    their price range and median; or why this model has none."""
    reason = model.no_comparables_reason
    if reason is not None:
        return {"unavailable": reason}
    packed = model.pack_flags([instance])
    (sales,) = model.comparables(packed.numeric, packed.categorical, k, packed.missing_category)
    prices = sorted(s["price"] for s in sales)
    spec = model.manifest.comparables
    return {
        "sales": sales,
        "low": prices[0],
        "high": prices[-1],
        "median_price": float(median(prices)),
        "method": spec.method if spec is not None else "",
    }


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
        "warnings": labelled(model, [w for w in after.warnings if w["code"] != "imputed"]),
    }
    require_finite(result, "what_if", named + out_of_range(before.warnings, "property"))
    return result


#: Deal terms (`estate.runtime.deal` names) as the request's ``deal`` fields call them.
_REQUEST_NAMES = {"price": "asking_price", "annual_rate": "rate"}
#: The ``deal`` fields given in percent (the core takes fractions).
_PERCENT = ("rate", "vacancy", "maintenance")


def deal(
    settings: ChatSettings,
    value: dict[str, Any],
    given: dict[str, float],
    down_fraction: float | None = None,
) -> dict[str, Any]:
    """Analytics of buying this house to rent it out; every assumption is listed.

    Worked out by `estate.runtime.deal.work_out`, as the analyze function does, so chat
    and analyze agree on every figure. Terms the analytics cannot use (and figures that
    overflow) are a 422 naming the ``deal`` fields, never a ValueError or an infinity.
    """
    names = {v: k for k, v in _REQUEST_NAMES.items()}
    terms = {
        names.get(k, k): v / 100 if k in _PERCENT else v
        for k, v in given.items()
        if names.get(k, k) in deal_core.GIVEN_TERMS
    }
    interval = value.get("interval")
    bounds = None if interval is None else (interval["lower"], interval["upper"])
    defaults = settings.deal_defaults()
    try:
        worked = deal_core.work_out(float(value["price"]), bounds, terms, defaults, down_fraction)
    except deal_core.DealError as exc:
        raise exc.as_problem("deal", _REQUEST_NAMES, "the asking price") from None
    t = worked.terms
    out: dict[str, Any] = {
        "inputs": {
            "price": t.price,
            "monthly_rent": t.monthly_rent,
            "down_payment": t.down_payment,
            "rate": t.annual_rate,
            "term_years": t.term_years,
            "taxes": t.taxes,
            "insurance": t.insurance,
            "hoa": t.hoa,
            "vacancy": t.vacancy,
            "maintenance": t.maintenance,
            "closing_costs": t.closing_costs,
        },
        "assumed": [a.note for a in worked.assumptions if a.source == "default" and a.note],
        "defaults": defaults.to_json(down_fraction),
        "analysis": worked.analysis.to_json(),
    }
    if worked.asking_price is not None:
        out["asking_price"] = worked.asking_price
        if worked.asking_vs_estimate is not None:
            out["asking_vs_estimate"] = worked.asking_vs_estimate
        if worked.verdict is not None:
            out["verdict"] = worked.verdict
            out["interval"] = interval
    require_finite(out, "deal", [FieldError(f"deal.{k}", "given", "input") for k in given])
    return out
