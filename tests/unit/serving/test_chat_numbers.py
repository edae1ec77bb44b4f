"""Every number chat takes (deal fields, property fields, figures in text, what-if counts)
gives a finite answer or a 4xx naming the field, never a 500.

In-process through functions-framework's app; `test_chat_http.py` sends one request of
each class over real HTTP, and `test_hostile.py` generates thousands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from estate.serving.advice_requests import DealInput

REPO = Path(__file__).resolve().parents[3]
HOUSE = "3 bed, 2 bath, 1,800 sq ft, built 1995, in College Creek"
PROPERTY = {"area": 1800, "Neighborhood": "CollgCr", "Year.Built": 1995, "Full.Bath": 2}
DEAL_FIELDS = sorted(DealInput.model_fields)


@pytest.fixture
def chat(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    from functions_framework import create_app

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return create_app(target="chat", source=str(REPO / "main.py")).test_client()


def post(chat: FlaskClient, body: Any) -> tuple[int, dict[str, Any]]:
    answer = chat.post("/", data=json.dumps(body), content_type="application/json")
    assert answer.status_code < 500, answer.get_data(as_text=True)
    # A 200 is encoded with allow_nan=False: parsing it strictly proves every number finite.
    parsed: dict[str, Any] = json.loads(answer.get_data(), parse_constant=_no_constants)
    if answer.status_code >= 400:
        assert answer.headers["Content-Type"] == "application/problem+json"
    return answer.status_code, parsed


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} in an answer")


def question(text: str = "Is it a good deal? What rent and cash flow?") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("price", [0, -0.0, 1e-300, 5e-324, 0.5])
def test_an_asking_price_under_a_dollar_is_a_400_naming_it(chat: FlaskClient, price: float) -> None:
    status, problem = post(
        chat, {"messages": question(), "property": PROPERTY, "deal": {"asking_price": price}}
    )
    assert status == 400
    assert [e["field"] for e in problem["errors"]] == ["deal.asking_price"]
    assert "greater than or equal to 1" in problem["errors"][0]["message"]


EXTREMES = [0, -0.0, 5e-324, 1e-300, 1e-9, 1, 99.999999, 100, 1e9, 1e9 + 1, 1e300, -1, 10**30]


@pytest.mark.parametrize("field", DEAL_FIELDS)
def test_every_deal_field_at_its_extremes_is_answered_or_named(
    chat: FlaskClient, field: str
) -> None:
    for value in EXTREMES:
        deal = {field: value}
        status, body = post(chat, {"messages": question(), "property": PROPERTY, "deal": deal})
        assert status in (200, 400, 422), (value, body)
        if status == 200:
            assert body["facts"]["deal"]["analysis"]["gross_yield"] >= 0
        else:
            assert {e["field"] for e in body["errors"]} == {f"deal.{field}"}, (value, body)


def test_every_deal_field_at_once_tiny_and_huge(chat: FlaskClient) -> None:
    numbers = {"term_years": 1, "rate": 100, "vacancy": 100, "maintenance": 100}
    tiny = dict.fromkeys(DEAL_FIELDS, 5e-324) | numbers | {"asking_price": 1}
    huge = dict.fromkeys(DEAL_FIELDS, 1000000000.0) | numbers | {"term_years": 50}
    for deal in (tiny, huge):
        status, _ = post(chat, {"messages": question(), "property": PROPERTY, "deal": deal})
        assert status == 200


@pytest.mark.parametrize(
    ("text", "left_out"),
    [
        (f"{HOUSE}. The asking price is $0.", "asking price 0"),
        (f"{HOUSE}. Listed at $0, rent $0 a month.", "asking price 0"),
        (f"{HOUSE}. Asking $999,999,999,999,999 million.", "asking price 1e+21"),
        (f"{HOUSE}. Is $250,000 a good price at 999999999% interest?", "rate 1e+09"),
        (f"{HOUSE}. Asking $250,000 with 150% down.", "down payment 150%"),
    ],
)
def test_figures_in_text_out_of_range_are_left_out_and_said(
    chat: FlaskClient, text: str, left_out: str
) -> None:
    """The client resends the history: a bad figure in an old turn must not fail every
    later request, so it is not used, and the reply says which and why."""
    for messages in (
        question(text),
        [*question(text), {"role": "assistant", "content": "…"}, *question("What drives it?")],
    ):
        status, body = post(chat, {"messages": messages})
        assert status == 200
        assert any(note.startswith(left_out) for note in body["facts"]["not_used"]), body
        assert "I did not use these figures" in body["reply"]


@pytest.mark.parametrize(
    "text",
    [
        "What if I add 999999999 fireplaces?",
        "What if I add 999,999,999,999,999 sq ft?",
        "What if I add 999999999 bedrooms and 999999999 garage spaces?",
    ],
)
def test_a_what_if_that_overflows_is_a_422_naming_the_change(chat: FlaskClient, text: str) -> None:
    messages = [
        *question(HOUSE),
        {"role": "assistant", "content": "Noted."},
        *question(text),
    ]
    status, body = post(chat, {"messages": messages})
    assert status in (200, 422)
    if status == 422:
        assert "not a finite number" in body["detail"]
        assert all(e["field"].startswith(("what_if.", "property.")) for e in body["errors"])
        assert any(e["field"].startswith("what_if.") for e in body["errors"])


def test_a_billion_fireplaces_is_the_422_of_the_issue(chat: FlaskClient) -> None:
    messages = [*question(HOUSE), {"role": "assistant", "content": "OK."}]
    status, body = post(
        chat, {"messages": [*messages, *question("what if I add 999999999 fireplaces")]}
    )
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["what_if.Fireplaces"]


@pytest.mark.parametrize(
    "house",
    [
        {"area": 1e300},
        {"area": 1e300, "Lot.Area": 1e300, "Year.Built": -1e300},
        {"area": 5e-324, "Overall.Qual": -1e308},
        {"Garage.Cars": 1e308, "Fireplaces": 1e308},
    ],
)
def test_extreme_property_fields_get_a_finite_answer_or_a_422_naming_them(
    chat: FlaskClient, house: dict[str, float]
) -> None:
    status, body = post(
        chat, {"messages": question("What is it worth? What drives it?"), "property": house}
    )
    assert status in (200, 422)
    if status == 422:
        given = {f"property.{k}" for k in house}
        if "Year.Built" in house:  # no remodel year given: taken as the year built
            given.add("property.Year.Remod.Add")
        assert {e["field"] for e in body["errors"]} <= given
        assert body["errors"]


def test_a_house_described_in_text_that_overflows_is_named(chat: FlaskClient) -> None:
    status, body = post(
        chat,
        {
            "messages": question(
                "a 999,999,999,999,999 sq ft house with a lot of 999,999,999,999,999 sq ft. "
                "Is it a good deal?"
            )
        },
    )
    assert status in (200, 422)
    if status == 422:
        assert {e["field"] for e in body["errors"]} <= {"property.area", "property.Lot.Area"}
