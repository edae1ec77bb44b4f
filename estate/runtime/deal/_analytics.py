"""The figures of one deal from its terms: the formulas, the range checks, `analyze`.

The conventions and formulas are the package's (`estate.runtime.deal` states them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from estate.contract.errors import CannotEstimateError, EstateAdvisorError, FieldError

Verdict = Literal["below", "inside", "above"]

#: Below a dollar a price (or a loan, or the cash put in) is not one: ratios over it
#: explode (12 * rent / 5e-324 is infinite), so analytics treat it as absent or refuse it.
MIN_PRICE = 1.0
MAX_TERM_YEARS = 100


class DealError(EstateAdvisorError, ValueError):
    """Deal terms the analytics cannot use; `problems` maps each term to what is wrong.

    `code` is ``deal_term`` for a term out of range, ``missing`` when a term is needed
    and cannot be defaulted (no asking price while the estimate is not a price). The
    callers name the terms as their requests spell them (``deal.rate``,
    ``terms.interest_rate``) and choose the status.
    """

    def __init__(self, problems: dict[str, str], code: str = "deal_term") -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems
        self.code = code

    def as_problem(
        self, prefix: str, names: Mapping[str, str], asking_price: str
    ) -> CannotEstimateError:
        """The 422 both callers answer: each term named as the caller's request spells it
        (``<prefix>.<names.get(term, term)>``); `asking_price` is how that request names
        the price to send when the estimate is not one."""
        errors = [
            FieldError(f"{prefix}.{names.get(term, term)}", problem, self.code)
            for term, problem in self.problems.items()
        ]
        if self.code == "missing":
            return CannotEstimateError(
                "The model's estimate is not a price the deal can be worked out on; send "
                f"{asking_price}.",
                errors,
            )
        return CannotEstimateError(
            "The deal cannot be worked out on these terms; fix the fields below.", errors
        )


def monthly_payment(principal: float, annual_rate: float, term_years: int) -> float:
    """Standard amortising payment: P·r / (1 - (1 + r)^-n), r monthly, n months."""
    if principal < 0 or annual_rate < 0 or term_years <= 0:
        raise ValueError("principal and rate must be >= 0 and the term positive")
    n = term_years * 12
    if principal == 0:
        return 0.0
    r = annual_rate / 12
    if r == 0:
        return principal / n
    # 1 - (1 + r)^-n, without the cancellation that makes it 0 for r under ~1e-16.
    return principal * r / -math.expm1(-n * math.log1p(r))


def gross_yield(monthly_rent: float, price: float) -> float:
    """Annual rent over price, before any cost."""
    return 12 * monthly_rent / price


def operating_expenses(
    monthly_rent: float, taxes: float, insurance: float, hoa: float, maintenance: float
) -> float:
    """Annual running costs of the property (not the loan)."""
    return taxes + insurance + 12 * hoa + maintenance * 12 * monthly_rent


def net_operating_income(monthly_rent: float, vacancy: float, expenses: float) -> float:
    """Annual rent actually collected (after vacancy) minus operating expenses."""
    return 12 * monthly_rent * (1 - vacancy) - expenses


def net_yield(monthly_rent: float, expenses: float, price: float) -> float:
    """Annual rent minus operating expenses, over price (no vacancy allowance)."""
    return (12 * monthly_rent - expenses) / price


def cap_rate(noi: float, price: float) -> float:
    """Net operating income over price: the yield of an all-cash purchase."""
    return noi / price


def dscr(noi: float, annual_debt_service: float) -> float | None:
    """Debt service coverage ratio; None without a loan (nothing to cover)."""
    return None if annual_debt_service == 0 else noi / annual_debt_service


def cash_on_cash(annual_cash_flow: float, cash_invested: float) -> float | None:
    """Annual cash flow over the cash put in; None when under a dollar was put in."""
    return None if cash_invested < MIN_PRICE else annual_cash_flow / cash_invested


def break_even_rent(
    fixed_annual_costs: float, annual_debt_service: float, vacancy: float, maintenance: float
) -> float | None:
    """Monthly rent with zero cash flow; None if vacancy + maintenance eat all the rent."""
    share_kept = 1 - vacancy - maintenance
    if share_kept <= 0:
        return None
    return (fixed_annual_costs + annual_debt_service) / (12 * share_kept)


def price_verdict(asking_price: float, lower: float, upper: float) -> Verdict:
    """Where the asking price sits against the model's interval."""
    if asking_price < lower:
        return "below"
    if asking_price > upper:
        return "above"
    return "inside"


@dataclass(frozen=True)
class DealTerms:
    """Every input of a deal, in the module's conventions (rates as fractions)."""

    price: float
    monthly_rent: float
    down_payment: float
    annual_rate: float
    term_years: int
    taxes: float
    insurance: float
    hoa: float
    vacancy: float
    maintenance: float
    closing_costs: float = 0.0


@dataclass(frozen=True)
class DealAnalysis:
    """Every figure of a deal; `to_json` is what chat replies quote."""

    loan: float
    monthly_payment: float
    annual_debt_service: float
    operating_expenses: float
    noi: float
    gross_yield: float
    net_yield: float
    cap_rate: float
    monthly_cash_flow: float
    cash_on_cash: float | None
    dscr: float | None
    break_even_rent: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_terms(terms: DealTerms) -> None:
    """A `DealError` naming every term the analytics cannot use (all at once)."""
    problems: dict[str, str] = {}
    for f in fields(terms):
        value = getattr(terms, f.name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems[f.name] = "must be a number"
        elif not math.isfinite(value):
            problems[f.name] = "must be a finite number"
        elif value < 0:
            problems[f.name] = "must not be negative"
    if "price" not in problems and terms.price < MIN_PRICE:
        problems["price"] = f"must be at least ${MIN_PRICE:g}"
    for name in ("vacancy", "maintenance", "annual_rate"):
        if name not in problems and getattr(terms, name) > 1:
            problems[name] = "must be a fraction from 0 to 1 (100 %)"
    if "term_years" not in problems and not (
        float(terms.term_years).is_integer() and 1 <= terms.term_years <= MAX_TERM_YEARS
    ):
        problems["term_years"] = f"must be a whole number of years from 1 to {MAX_TERM_YEARS}"
    if problems:
        raise DealError(problems)


def analyze(terms: DealTerms) -> DealAnalysis:
    """All the analytics of one deal, computed from its terms.

    Raises `DealError` for terms out of range and when a figure is not finite (amounts
    so large that they overflow), naming the terms; callers map it to a 4xx.
    """
    check_terms(terms)
    loan = terms.price - terms.down_payment
    loan = loan if loan >= MIN_PRICE else 0.0  # under a dollar owed: no loan to service
    payment = monthly_payment(loan, terms.annual_rate, terms.term_years)
    debt = 12 * payment
    expenses = operating_expenses(
        terms.monthly_rent, terms.taxes, terms.insurance, terms.hoa, terms.maintenance
    )
    noi = net_operating_income(terms.monthly_rent, terms.vacancy, expenses)
    annual_cash_flow = noi - debt
    fixed = terms.taxes + terms.insurance + 12 * terms.hoa
    analysis = DealAnalysis(
        loan=loan,
        monthly_payment=payment,
        annual_debt_service=debt,
        operating_expenses=expenses,
        noi=noi,
        gross_yield=gross_yield(terms.monthly_rent, terms.price),
        net_yield=net_yield(terms.monthly_rent, expenses, terms.price),
        cap_rate=cap_rate(noi, terms.price),
        monthly_cash_flow=annual_cash_flow / 12,
        cash_on_cash=cash_on_cash(annual_cash_flow, terms.down_payment + terms.closing_costs),
        dscr=dscr(noi, debt),
        break_even_rent=break_even_rent(fixed, debt, terms.vacancy, terms.maintenance),
    )
    figures = [v for v in analysis.to_json().values() if v is not None]
    if not all(math.isfinite(v) for v in figures):
        given = [f.name for f in fields(terms) if getattr(terms, f.name)]
        raise DealError(dict.fromkeys(given, "too large: the figures overflow"))
    return analysis
