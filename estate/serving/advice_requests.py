"""Request bodies of the advice functions, chat and analyze: pydantic models (the source
of their OpenAPI schemas), checked by `estate.serving.requests.parse_body`.

Apart from predict's envelopes, so a predict or explain process never builds them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict

Money = Annotated[float, AllowInfNan(False), Field(ge=0, le=1e9)]
#: A price under a dollar is not a price: yields over it explode (12 * rent / 5e-324).
Price = Annotated[float, AllowInfNan(False), Field(ge=1, le=1e9)]
Percent = Annotated[float, AllowInfNan(False), Field(ge=0, le=100)]
#: analyze's terms take JSON numbers only: not "6.5" (a string), not true (a bool).
StrictMoney = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=1e9)]
StrictPrice = Annotated[float, Strict(), AllowInfNan(False), Field(ge=1, le=1e9)]
StrictPercent = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=100)]


class _Closed(BaseModel):
    """Unknown fields are refused (named in the 400), not ignored."""

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
