"""Investment analytics against examples worked by hand (figures in the comments)."""

from __future__ import annotations

import pytest

from estate.runtime import deal as analytics


def test_monthly_payment_matches_amortisation_tables() -> None:
    # $200,000 at 6 % over 30 years: the textbook $1,199.10 a month.
    assert analytics.monthly_payment(200_000, 0.06, 30) == pytest.approx(1199.10, abs=0.005)
    # $100,000 at 5 % over 15 years: $790.79.
    assert analytics.monthly_payment(100_000, 0.05, 15) == pytest.approx(790.79, abs=0.005)
    # No interest: the principal spread evenly over 360 months.
    assert analytics.monthly_payment(36_000, 0.0, 30) == 100.0
    assert analytics.monthly_payment(0, 0.06, 30) == 0.0


def test_payments_repay_the_loan_exactly() -> None:
    """Run the schedule month by month: the balance ends at zero."""
    principal, rate, years = 250_000.0, 0.065, 30
    payment = analytics.monthly_payment(principal, rate, years)
    balance = principal
    for _ in range(years * 12):
        balance = balance * (1 + rate / 12) - payment
    assert balance == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("principal", "rate", "years"), [(-1.0, 0.05, 30), (1000.0, -0.01, 30), (1000.0, 0.05, 0)]
)
def test_monthly_payment_rejects_impossible_loans(
    principal: float, rate: float, years: int
) -> None:
    with pytest.raises(ValueError, match="positive"):
        analytics.monthly_payment(principal, rate, years)


def test_full_deal_worked_by_hand() -> None:
    """Price 200k, rent 1,800, 40k down at 6 % / 30 y, taxes 3,000, insurance 1,200,
    vacancy 5 %, maintenance 10 %.

    loan 160,000 → payment 959.28 (0.8 * 1,199.10); debt service 11,511.37
    expenses 3,000 + 1,200 + 0.10 * 21,600 = 6,360
    NOI 21,600 * 0.95 - 6,360 = 14,160
    gross 21,600 / 200,000 = 10.8 %; net (21,600 - 6,360) / 200,000 = 7.62 %; cap 7.08 %
    cash flow (14,160 - 11,511.37) / 12 = 220.72; cash-on-cash 2,648.63 / 40,000 = 6.62 %
    DSCR 14,160 / 11,511.37 = 1.230; break-even (4,200 + 11,511.37) / (12 * 0.85) = 1,540.33
    """
    terms = analytics.DealTerms(
        price=200_000,
        monthly_rent=1_800,
        down_payment=40_000,
        annual_rate=0.06,
        term_years=30,
        taxes=3_000,
        insurance=1_200,
        hoa=0,
        vacancy=0.05,
        maintenance=0.10,
    )
    a = analytics.analyze(terms)
    assert a.loan == 160_000
    assert a.monthly_payment == pytest.approx(959.28, abs=0.005)
    assert a.operating_expenses == pytest.approx(6_360)
    assert a.noi == pytest.approx(14_160)
    assert a.gross_yield == pytest.approx(0.108)
    assert a.net_yield == pytest.approx(0.0762)
    assert a.cap_rate == pytest.approx(0.0708)
    assert a.monthly_cash_flow == pytest.approx(220.72, abs=0.01)
    assert a.cash_on_cash == pytest.approx(0.06622, abs=1e-5)
    assert a.dscr == pytest.approx(1.2301, abs=1e-4)
    assert a.break_even_rent == pytest.approx(1_540.33, abs=0.01)
    # At the break-even rent the cash flow is zero, by definition.
    even = analytics.analyze(
        analytics.DealTerms(**{**terms.__dict__, "monthly_rent": a.break_even_rent})
    )
    assert even.monthly_cash_flow == pytest.approx(0.0, abs=1e-9)


def test_all_cash_deal_has_no_dscr_and_cash_on_cash_is_the_cap_rate() -> None:
    terms = analytics.DealTerms(
        price=100_000,
        monthly_rent=1_000,
        down_payment=100_000,
        annual_rate=0.07,
        term_years=30,
        taxes=1_000,
        insurance=500,
        hoa=50,
        vacancy=0.0,
        maintenance=0.0,
    )
    a = analytics.analyze(terms)
    assert a.loan == 0
    assert a.monthly_payment == 0
    assert a.dscr is None
    # NOI = 12,000 - 1,000 - 500 - 600 = 9,900
    assert a.noi == pytest.approx(9_900)
    assert a.cash_on_cash == pytest.approx(a.cap_rate) == pytest.approx(0.099)
    assert a.break_even_rent == pytest.approx(2_100 / 12)


def test_break_even_rent_is_none_when_costs_eat_all_rent() -> None:
    assert analytics.break_even_rent(1_000, 1_000, vacancy=0.5, maintenance=0.5) is None
    assert analytics.cash_on_cash(1_000, 0) is None


@pytest.mark.parametrize(
    ("asking", "verdict"),
    [(149_999, "below"), (150_000, "inside"), (200_000, "inside"), (250_001, "above")],
)
def test_price_verdict_against_the_interval(asking: float, verdict: str) -> None:
    assert analytics.price_verdict(asking, 150_000, 250_000) == verdict


def terms(**changes: float) -> analytics.DealTerms:
    base = {
        "price": 200_000.0,
        "monthly_rent": 1_800.0,
        "down_payment": 40_000.0,
        "annual_rate": 0.06,
        "term_years": 30,
        "taxes": 3_000.0,
        "insurance": 1_200.0,
        "hoa": 0.0,
        "vacancy": 0.05,
        "maintenance": 0.10,
    }
    return analytics.DealTerms(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("price", [0.0, -0.0, 1e-300, 5e-324, 0.99, -5.0])
def test_a_price_under_a_dollar_is_a_deal_error_naming_the_price(price: float) -> None:
    """Not a ZeroDivisionError, not a yield of 4e+327 that JSON cannot encode."""
    with pytest.raises(analytics.DealError) as raised:
        analytics.analyze(terms(price=price, down_payment=0.0))
    assert set(raised.value.problems) == {"price"}
    assert isinstance(raised.value, ValueError)  # still a ValueError for old callers


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"monthly_rent": float("nan")}, {"monthly_rent"}),
        ({"taxes": float("inf"), "hoa": -1.0}, {"taxes", "hoa"}),
        ({"annual_rate": 1.5, "vacancy": 2.0}, {"annual_rate", "vacancy"}),
        ({"term_years": 0}, {"term_years"}),
        ({"term_years": 2.5}, {"term_years"}),
        ({"term_years": 1000}, {"term_years"}),
    ],
)
def test_every_unusable_term_is_named_at_once(changes: dict[str, float], named: set[str]) -> None:
    with pytest.raises(analytics.DealError) as raised:
        analytics.analyze(terms(**changes))
    assert set(raised.value.problems) == named


def test_figures_that_overflow_are_a_deal_error_not_an_infinity() -> None:
    with pytest.raises(analytics.DealError, match="overflow") as raised:
        analytics.analyze(terms(price=1e308, monthly_rent=1e308, down_payment=0.0))
    assert {"price", "monthly_rent"} <= set(raised.value.problems)


def test_tiny_amounts_are_no_loan_and_no_cash_invested_not_huge_ratios() -> None:
    """A loan of 5e-324 (price - down payment) would make DSCR infinite; cash put in of
    1e-300 would make cash-on-cash 1e+304: under a dollar counts as none."""
    a = analytics.analyze(terms(price=100_000.0, down_payment=100_000.0 - 1e-11))
    assert a.loan == 0
    assert a.dscr is None
    b = analytics.analyze(terms(down_payment=1e-300))
    assert b.cash_on_cash is None


@pytest.mark.parametrize("rate", [1e-9, 1e-17, 5e-324])
def test_a_rate_too_small_to_change_one_plus_r_is_still_amortised(rate: float) -> None:
    """(1 + 1e-17)^-360 is exactly 1.0: the textbook formula divides by zero there."""
    assert analytics.monthly_payment(36_000, rate, 30) == pytest.approx(100.0)
