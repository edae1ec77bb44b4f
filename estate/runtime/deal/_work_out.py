"""The terms of one deal: given by the caller or defaulted, and said which (`work_out`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from estate.runtime.deal._analytics import (
    MIN_PRICE,
    DealAnalysis,
    DealError,
    DealTerms,
    Verdict,
    analyze,
    price_verdict,
)


@dataclass(frozen=True)
class DealDefaults:
    """What a term is when the caller does not give it (fractions; see `work_out`)."""

    price_to_rent: float = 15.0  # price / annual rent: the rent default is estimate / 15 / 12
    down_payment: float = 0.20  # of the price
    rate: float = 0.065  # per year
    term_years: int = 30
    tax_rate: float = 0.015  # of the price, per year
    insurance_rate: float = 0.005  # of the price, per year
    vacancy: float = 0.05  # of the rent
    maintenance: float = 0.08  # of the rent

    def to_json(self, down_payment: float | None = None) -> dict[str, Any]:
        """The rules in force; `down_payment` overrides the share (chat's "25 % down")."""
        out = asdict(self)
        if down_payment is not None:
            out["down_payment"] = down_payment
        return out


Source = Literal["given", "default"]


@dataclass(frozen=True)
class Assumption:
    """One term as used: its value, whether the caller gave it, and the rule of a default.

    `note` is the sentence chat says for a default (None: chat says nothing, e.g. no
    closing costs); `basis` is the rule in a few words for every term.
    """

    term: str
    value: float
    source: Source
    basis: str
    note: str | None = None


@dataclass(frozen=True)
class Deal:
    """A worked-out deal: the terms used, each one's provenance, the figures, the verdict."""

    terms: DealTerms
    assumptions: tuple[Assumption, ...]
    analysis: DealAnalysis
    estimate: float
    interval: tuple[float, float] | None
    asking_price: float | None  # None: not given, the deal is priced at the estimate
    asking_vs_estimate: float | None
    verdict: Verdict | None  # asking price against the interval (None: no asking or interval)


#: The terms `work_out` reads from `given`, in `DealTerms` names and units.
GIVEN_TERMS = tuple(f.name for f in fields(DealTerms))


def work_out(
    estimate: float,
    interval: tuple[float, float] | None,
    given: Mapping[str, float],
    defaults: DealDefaults,
    down_fraction: float | None = None,
) -> Deal:
    """The deal on `given` terms (`DealTerms` names, rates as fractions), the rest defaulted.

    Without a price the deal is priced at the model's `estimate` (refused when that is
    not a price); without a rent, rent = estimate / price_to_rent / 12. `down_fraction`
    (a share of the price the caller gave, e.g. "20 % down") stands in for a dollar
    down payment. Raises `DealError` naming each unusable term.
    """
    unknown = set(given) - set(GIVEN_TERMS)
    if unknown:
        raise ValueError(f"not deal terms: {sorted(unknown)}")  # a caller's bug, not input
    used: list[Assumption] = []

    def take(term: str, default: float, basis: str, note: str | None) -> float:
        if term in given:
            used.append(Assumption(term, float(given[term]), "given", "given"))
            return float(given[term])
        used.append(Assumption(term, default, "default", basis, note))
        return default

    asking = given.get("price")
    if asking is None and not estimate >= MIN_PRICE:
        raise DealError({"price": "needed: the estimate is not a price"}, code="missing")
    price = take(
        "price",
        estimate,
        "the model's estimate",
        "price: no asking price given, used the model's estimate",
    )
    ratio = defaults.price_to_rent
    rent = take(
        "monthly_rent",
        estimate / ratio / 12,
        f"estimate / {ratio:g} / 12 (price-to-rent ratio {ratio:g})",
        f"rent: not given; assumed a price-to-rent ratio of {ratio:g} "
        "(annual rent = estimate / ratio); tell me the real rent for a better answer",
    )
    if down_fraction is not None and "down_payment" not in given:
        down = price * down_fraction
        used.append(Assumption("down_payment", down, "given", f"{down_fraction:.0%} of the price"))
    else:
        share = defaults.down_payment
        down = take(
            "down_payment", price * share, f"{share:.0%} of the price", f"down payment: {share:.0%}"
        )
    rate = take(
        "annual_rate", defaults.rate, f"{defaults.rate:.2%} a year", f"rate: {defaults.rate:.2%}"
    )
    years = take(
        "term_years",
        defaults.term_years,
        f"{defaults.term_years} years",
        f"term: {defaults.term_years} years",
    )
    tax, ins = defaults.tax_rate, defaults.insurance_rate
    taxes = take(
        "taxes",
        price * tax,
        f"{tax:.2%} of the price a year",
        f"taxes: {tax:.2%} of the price per year",
    )
    insurance = take(
        "insurance",
        price * ins,
        f"{ins:.2%} of the price a year",
        f"insurance: {ins:.2%} of the price per year",
    )
    hoa = take("hoa", 0.0, "none", "HOA: none")
    vacancy = take(
        "vacancy",
        defaults.vacancy,
        f"{defaults.vacancy:.0%} of the rent",
        f"vacancy: {defaults.vacancy:.0%} of the rent",
    )
    maintenance = take(
        "maintenance",
        defaults.maintenance,
        f"{defaults.maintenance:.0%} of the rent",
        f"maintenance: {defaults.maintenance:.0%} of the rent",
    )
    closing = take("closing_costs", 0.0, "none", None)
    terms = DealTerms(
        price=price,
        monthly_rent=rent,
        down_payment=down,
        annual_rate=rate,
        term_years=int(years),  # whole years: both requests take an integer
        taxes=taxes,
        insurance=insurance,
        hoa=hoa,
        vacancy=vacancy,
        maintenance=maintenance,
        closing_costs=closing,
    )
    analysis = analyze(terms)
    vs = verdict = None
    if asking is not None and estimate >= MIN_PRICE:  # a ratio over a price, not over ~0
        vs = (asking - estimate) / estimate
        if interval is not None:
            verdict = price_verdict(asking, interval[0], interval[1])
    return Deal(terms, tuple(used), analysis, estimate, interval, asking, vs, verdict)
