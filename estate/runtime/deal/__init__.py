"""The deal core: investment analytics of buying a house to rent it out, one place for all.

Chat's deal answers and the ``analyze`` function both call `work_out`: the same terms,
the same defaults (`DealDefaults`, from the ``ESTATE_DEAL_*`` settings), the same
figures, so the two can never disagree. Pure and typed: no HTTP, no settings, no model.

Conventions (every caller and the chat replies rely on them): money in dollars, rates as
fractions (0.065 = 6.5 %), rent and payments per month, taxes and insurance per year.

* gross yield = 12 * rent / price
* operating expenses = taxes + insurance + 12 * HOA + maintenance * 12 * rent
* net yield = (12 * rent - operating expenses) / price          (no vacancy allowance)
* NOI = 12 * rent * (1 - vacancy) - operating expenses
* cap rate = NOI / price;  DSCR = NOI / annual debt service
* cash flow = (NOI - annual debt service) / 12 per month
* cash-on-cash = annual cash flow / cash invested (down payment + closing costs)
* break-even rent = the rent at which cash flow is zero

`analyze` (and so `work_out`) checks its terms first and its figures last: a price under
a dollar, a negative amount, a rate or share out of range, or any figure that is not a
finite number raises a `DealError` naming the terms, never a bare ValueError or an
infinity in a reply.
"""

from estate.runtime.deal._analytics import (
    MAX_TERM_YEARS,
    MIN_PRICE,
    DealAnalysis,
    DealError,
    DealTerms,
    Verdict,
    analyze,
    break_even_rent,
    cap_rate,
    cash_on_cash,
    check_terms,
    dscr,
    gross_yield,
    monthly_payment,
    net_operating_income,
    net_yield,
    operating_expenses,
    price_verdict,
)
from estate.runtime.deal._work_out import (
    GIVEN_TERMS,
    Assumption,
    Deal,
    DealDefaults,
    Source,
    work_out,
)

__all__ = [
    "GIVEN_TERMS",
    "MAX_TERM_YEARS",
    "MIN_PRICE",
    "Assumption",
    "Deal",
    "DealAnalysis",
    "DealDefaults",
    "DealError",
    "DealTerms",
    "Source",
    "Verdict",
    "analyze",
    "break_even_rent",
    "cap_rate",
    "cash_on_cash",
    "check_terms",
    "dscr",
    "gross_yield",
    "monthly_payment",
    "net_operating_income",
    "net_yield",
    "operating_expenses",
    "price_verdict",
    "work_out",
]
