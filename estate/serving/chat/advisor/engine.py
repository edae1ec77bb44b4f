"""The local engine: answers the common questions offline, from the tools' results only.

Stateless: the features and deal terms come from the request's ``property`` and ``deal``
and from every user message so far; the question (intents, what-if edits) comes from the
last message. Replies quote tool results, rounded for reading; ``facts`` has them exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from estate.runtime.serving_model import ServingModel
from estate.serving.advice_requests import ChatRequest
from estate.serving.chat.advisor import tools
from estate.serving.chat.advisor.guard import REFUSAL, is_injection
from estate.serving.chat.advisor.parse import Parsed, parse_message
from estate.serving.chat.advisor.request import usable_terms
from estate.serving.chat.advisor.vocab import Change
from estate.serving.function_settings import ChatSettings

INTENTS: dict[str, str] = {
    "what_if": r"what if|what happens if|\bif (?:i|we)\b|\badd(?:ing)?\b|\bfinish|renovat|"
    r"remodel|upgrade|improve|raise",
    "drivers": r"\bdrive|\bdriver|\bwhy\b|factor|what (?:affects|matters)|explain",
    "comparables": r"similar (?:house|home|propert|sale)|comparabl|\bcomps?\b|"
    r"(?:sold|sell) for|nearby sales|recent sales|other (?:house|home)s? (?:sold|sell)",
    "deal": r"\bdeal\b|asking|overpriced|underpriced|good price|fair price|\boffer\b|"
    r"listed|worth (?:paying|buying)|should i buy",
    "rent": r"\brent|yield|cash ?flow|cap rate|return|mortgage|dscr|invest|break[- ]even|"
    r"payment|cash[- ]on[- ]cash",
    "value": r"worth|value|price|estimate|how much|valuation|apprais",
    "help": r"^\s*(?:hi|hello|hey|help)\b|what can you do",
}

#: The features that move an Ames price most; asked for when missing.
KEY_FEATURES = {
    "area": "living area in sq ft",
    "Overall.Qual": "overall quality 1-10",
    "Year.Built": "year built",
    "Neighborhood": "neighbourhood",
    "Full.Bath": "bathrooms",
    "Bedroom.AbvGr": "bedrooms",
    "Garage.Cars": "garage size in cars",
    "Total.Bsmt.SF": "basement area in sq ft",
}

EXAMPLE = '"3 bed, 2 bath, 1,800 sq ft, built 1995, in College Creek"'
EXAMPLES = (
    '"What is a 3 bed, 2 bath, 1,800 sq ft house built 1995 in College Creek worth?", '
    '"What drives its value?", "What did similar houses sell for?", '
    '"Is $250,000 a good price?", "What rent and cash flow can '
    'I expect?", "What if I add a bathroom?"'
)


@dataclass
class Answer:
    """A reply and the structured results every number in it came from."""

    reply: str
    facts: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"


def intents(text: str) -> list[str]:
    """Every question the message asks, in the order answers are given."""
    lowered = text.lower()
    return [name for name, pattern in INTENTS.items() if re.search(pattern, lowered)]


def money(x: float) -> str:
    """Dollars rounded to the dollar, sign first: -$115."""
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def gather(model: ServingModel, request: ChatRequest, what_if: bool) -> tuple[Parsed, Parsed]:
    """(everything known about house and deal, what the last message asks to change)."""
    columns = set(model.feature_names)
    places = next((c.categories for c in model.categorical if c.name == "Neighborhood"), [])
    known = Parsed()
    users = [m.content for m in request.messages if m.role == "user"]
    for text in users[:-1]:
        # An earlier what-if ("add 300 sq ft", "what if it had 4 bedrooms") is not a fact.
        hypothetical = "what_if" in intents(text)
        earlier = parse_message(text, columns, places, changes=hypothetical)
        if not (hypothetical and (known.features or request.property)):
            known.features.update(earlier.features)
            known.understood += earlier.understood
        known.deal.update(earlier.deal)
        known.down_fraction = earlier.down_fraction or known.down_fraction
    last = parse_message(users[-1], columns, places, changes=what_if)
    known.deal.update(last.deal)
    known.down_fraction = last.down_fraction or known.down_fraction
    if what_if and known.features | (request.property or {}):
        last.changes += [(Change(col, col), val) for col, val in last.features.items()]
        last.change_labels += [
            f"{col} = {val:g}" if isinstance(val, float) else f"{col} = {val}"
            for col, val in last.features.items()
        ]
    else:
        known.features.update(last.features)
        known.understood += last.understood
    known.deal, known.not_used = usable_terms(known.deal)
    if known.down_fraction is not None and not 0 <= known.down_fraction <= 1:
        known.not_used.append(f"down payment {known.down_fraction:.0%} (must be 0 to 100 %)")
        known.down_fraction = None
    if request.property:
        known.features.update(request.property)
    if request.deal:
        known.deal.update(request.deal.given())
    if "Year.Built" in known.features and "Year.Remod.Add" not in known.features:
        known.features["Year.Remod.Add"] = known.features["Year.Built"]
        known.understood.append("no remodel year given: assumed none since it was built")
    return known, last


def answer(model: ServingModel, settings: ChatSettings, request: ChatRequest) -> Answer:
    """The local engine's reply to the conversation's last message."""
    text = request.messages[-1].content
    if is_injection(text):
        return Answer(REFUSAL, {"refused": True})
    asked = intents(text)
    known, last = gather(model, request, "what_if" in asked)
    if "what_if" in asked and not last.changes:
        asked.remove("what_if")
    if not known.features:
        return _needs_property(asked, last)
    limit = settings.max_field_errors
    instance = tools.validate_property(model, known.features, "property", max_field_errors=limit)
    facts: dict[str, Any] = {"property": instance, "understood": known.understood}
    value = tools.estimate(model, instance)
    facts["estimate"] = value
    parts = [_value_text(value)]
    missing = [label for col, label in KEY_FEATURES.items() if col not in instance]
    facts["drivers"] = tools.drivers(model, instance, max_field_errors=limit)  # one SHAP pass
    if "drivers" in asked:
        parts.append(_drivers_text(facts["drivers"]))
    if "comparables" in asked:
        facts["comparables"] = tools.comparables(model, instance)
        parts.append(_comparables_text(facts["comparables"]))
    if {"deal", "rent"} & set(asked) or last.deal or request.deal:
        facts["deal"] = tools.deal(settings, value, known.deal, known.down_fraction)
        parts.append(_deal_text(facts["deal"], "deal" in asked))
    if "what_if" in asked:
        facts["what_if"] = tools.what_if(model, instance, last.changes, max_field_errors=limit)
        parts.append(_what_if_text(facts["what_if"], last.change_labels))
    if missing and ("value" in asked or not asked):
        parts.append("For a sharper estimate, tell me the " + ", ".join(missing) + ".")
    if known.not_used:
        facts["not_used"] = known.not_used
        parts.append("I did not use these figures: " + "; ".join(known.not_used) + ".")
    if last.leftover:
        facts["not_understood"] = last.leftover
        parts.append("I did not understand: " + "; ".join(f'"{s}"' for s in last.leftover) + ".")
    if not asked and not last.features:
        parts.append(f"I am not sure what you asked; I can answer questions like {EXAMPLES}.")
    return Answer("\n\n".join(parts), facts)


def _needs_property(asked: list[str], last: Parsed) -> Answer:
    needed = ", ".join(KEY_FEATURES.values())
    head = (
        "Hello! I value houses with the model and work out the investment figures. "
        if "help" in asked or not asked
        else "I need to know about the house first. "
    )
    reply = (
        f"{head}Describe it in words (for example {EXAMPLE}) or send its "
        f'features in "property". The ones that matter most: {needed}.'
    )
    facts: dict[str, Any] = {"needs": list(KEY_FEATURES)}
    if last.leftover:
        facts["not_understood"] = last.leftover
        reply += " I did not understand: " + "; ".join(f'"{s}"' for s in last.leftover) + "."
    return Answer(reply, facts)


def _value_text(value: dict[str, Any]) -> str:
    text = f"The model values this house at {money(value['price'])}"
    interval = value.get("interval")
    if interval:
        text += (
            f" ({interval['level']:.0%} interval {money(interval['lower'])} to "
            f"{money(interval['upper'])})"
        )
    imputed = value["imputed"]
    out = [f"{w.get('label') or w['field']}: {w['message']}" for w in value["warnings"]]
    text += "."
    if imputed:
        text += f" {len(imputed)} feature(s) you did not give were set to typical values."
    if out:
        text += " Note: " + "; ".join(out) + "."
    return text


def _drivers_text(drivers: dict[str, Any]) -> str:
    items = drivers["items"]
    if not items:
        return "Every feature you gave is at its typical value, so none stands out."
    if "base_price" not in drivers:  # what-if: against each feature's typical value
        lines = [
            f"- {_feature(d)} = {tools.show(d['value'])}: {_signed(d['dollars'])} "
            f"against a typical {tools.show(d['baseline'])}"
            for d in items
        ]
        return f"What drives the value ({drivers['method']}):\n" + "\n".join(lines)
    lines = [
        f"- {_feature(d)} = {tools.show(d['value'])}"
        f"{'' if d['given'] else ' (not given: typical value)'}: {_signed(d['dollars'])}"
        for d in items
    ]
    return (
        "What drives the value (exact SHAP contributions: starting from the average house "
        f"at {money(drivers['base_price'])}, the effects of all features add up to the "
        "estimate; the largest):\n" + "\n".join(lines)
    )


def _comparables_text(found: dict[str, Any]) -> str:
    if "unavailable" in found:
        return str(found["unavailable"])
    sales = found["sales"]
    lines = []
    for sale in sales:
        where = f", {sale['km']:.1f} km away" if sale.get("km") is not None else ""
        when = f" in {sale['sale_date']}" if sale.get("sale_date") else ""
        diffs = "; ".join(d["text"] for d in sale["differences"]) or "alike in what matters"
        lines.append(f"- {money(sale['price'])}{when}{where}: {diffs}")
    return (
        f"Similar houses sold for {money(found['low'])} to {money(found['high'])} "
        f"(median {money(found['median_price'])}); the {len(sales)} nearest training sales "
        "by the model's most important features and location, with how each differs "
        "(theirs vs this house):\n" + "\n".join(lines)
    )


def _feature(driver: dict[str, Any]) -> str:
    """A driver as people read it: the config's label, else the column name."""
    label: str | None = driver.get("label")
    return label or str(driver["feature"])


def _signed(dollars: float) -> str:
    return f"{'+' if dollars >= 0 else '-'}{money(abs(dollars))}"


def _what_if_text(result: dict[str, Any], labels: list[str]) -> str:
    diff = result["difference"]
    sign = "+" if diff >= 0 else "-"
    text = (
        f"If you {' and '.join(labels)}: {money(result['before'])} → {money(result['after'])} "
        f"({sign}{money(abs(diff))})."
    )
    if result["assumed"]:
        text += " Assumed: " + "; ".join(result["assumed"]) + "."
    return text


def _deal_text(deal: dict[str, Any], verdict_asked: bool) -> str:
    a, i = deal["analysis"], deal["inputs"]
    lines = []
    if "verdict" in deal:
        pct, top = deal["asking_vs_estimate"], deal["interval"]["upper"]
        lines.append(
            f"The asking price {money(deal['asking_price'])} is {deal['verdict']} the model's "
            f"interval ({abs(pct):.1%} {'above' if pct >= 0 else 'below'} the estimate). "
            + {
                "below": "A bargain by the model: check what it does not know (condition, "
                "repairs) before you rely on it.",
                "inside": "The model supports that price.",
                "above": f"The model does not support that price; its interval tops out at "
                f"{money(top)}, a firmer basis for an offer.",
            }[deal["verdict"]]
        )
    elif verdict_asked:
        lines.append("Tell me the asking price and I will compare it with the estimate.")
    lines.append(
        f"At {money(i['price'])} with rent of {money(i['monthly_rent'])}/month: gross yield "
        f"{a['gross_yield']:.2%}, net yield {a['net_yield']:.2%}, NOI {money(a['noi'])}/year, "
        f"cap rate {a['cap_rate']:.2%}; "
        f"mortgage {money(a['monthly_payment'])}/month on {money(a['loan'])}, cash flow "
        f"{money(a['monthly_cash_flow'])}/month"
        + (f", DSCR {a['dscr']:.2f}" if a["dscr"] is not None else "")
        + (f", cash-on-cash {a['cash_on_cash']:.2%}" if a["cash_on_cash"] is not None else "")
        + (f", break-even rent {money(a['break_even_rent'])}/month" if a["break_even_rent"] else "")
        + "."
    )
    if deal["assumed"]:
        lines.append(
            'Assumptions (send them in "deal" to change): ' + "; ".join(deal["assumed"]) + "."
        )
    return " ".join(lines)
