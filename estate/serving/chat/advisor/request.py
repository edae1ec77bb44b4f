"""The chat request body, validated with pydantic (the same problem+json on errors)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, ValidationError

from estate.serving.errors import FieldError, bad_request
from estate.serving.schema import parse_body

Money = Annotated[float, AllowInfNan(False), Field(ge=0, le=1e9)]
#: A price under a dollar is not a price: yields over it explode (12 * rent / 5e-324).
Price = Annotated[float, AllowInfNan(False), Field(ge=1, le=1e9)]
Percent = Annotated[float, AllowInfNan(False), Field(ge=0, le=100)]


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


def usable_terms(terms: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Deal terms read from text, kept only where the ``deal`` field would accept them.

    A conversation is resent whole, so a bad figure in an old message must not fail
    every later request: it is left out, and the reply says which and why.
    """
    try:
        DealInput.model_validate(terms)
    except ValidationError as exc:
        bad = {str(e["loc"][0]): e["msg"] for e in exc.errors(include_url=False) if e["loc"]}
        notes = [
            f"{k.replace('_', ' ')} {terms[k]:g} ({bad[k][0].lower()}{bad[k][1:]})"
            for k in bad
            if k in terms
        ]
        return {k: v for k, v in terms.items() if k not in bad}, notes
    return terms, []


class ChatRequest(_Closed):
    """``{"messages": [...], "property": {...}, "deal": {...}}``; the last message is the user's."""

    messages: list[Message] = Field(min_length=1)
    property: dict[str, Any] | None = Field(
        None, description="Raw model features you know (GET the predict function for the list)."
    )
    deal: DealInput | None = None


def parse_chat_request(body: Any) -> ChatRequest:
    """The validated request, or a 400 naming every bad field."""
    request = parse_body(ChatRequest, body, "unknown field: remove it or check the spelling")
    if request.messages[-1].role != "user":
        raise bad_request(
            "The last message must be the user's question.",
            [
                FieldError(
                    f"messages[{len(request.messages) - 1}].role",
                    "must be 'user'",
                    "last_message_role",
                )
            ],
        )
    return request
