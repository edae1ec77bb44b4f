"""The analyze function in-process: the valuation is predict's, the deal is the core's and
chat's, every term is marked given or default, and each class of bad field is a 4xx
naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import function_client as client
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from estate.runtime import deal as core
from estate.serving.analyze import TERMS
from estate.serving.function_settings import AnalyzeSettings

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = json.loads((REPO / "examples" / "analyze_ames.json").read_text())
HOUSE = EXAMPLE["property"]


@pytest.fixture
def clients(serving_env: pytest.MonkeyPatch, ames_store: Path) -> dict[str, FlaskClient]:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return {name: client(name) for name in ("analyze", "predict", "chat")}


def post(c: FlaskClient, body: Any) -> tuple[int, dict[str, Any]]:
    answer = c.post("/", json=body)
    return answer.status_code, answer.get_json()


def test_the_example_gets_the_valuation_of_predict_and_the_deal_of_the_core(
    clients: dict[str, FlaskClient],
) -> None:
    status, body = post(clients["analyze"], EXAMPLE)
    assert status == 200, body
    _, predicted = post(clients["predict"], {"instances": [HOUSE]})
    (p,) = predicted["predictions"]
    valuation = body["valuation"]
    assert valuation["price"] == p["price"]
    assert valuation["interval"] == p["interval"]
    assert body["model"] == predicted["model"]
    # The figures are the core's on the same terms, the defaults those of the settings.
    s = AnalyzeSettings()
    terms = EXAMPLE["terms"]
    expected = core.analyze(
        core.DealTerms(
            price=terms["asking_price"],
            monthly_rent=terms["monthly_rent"],
            down_payment=terms["down_payment"],
            annual_rate=terms["interest_rate"] / 100,
            term_years=terms["term_years"],
            taxes=terms["asking_price"] * s.deal_tax_rate,
            insurance=terms["asking_price"] * s.deal_insurance_rate,
            hoa=0.0,
            vacancy=s.deal_vacancy,
            maintenance=s.deal_maintenance,
        )
    )
    analysis = body["deal"]["analysis"]
    assert analysis == pytest.approx(
        {**expected.to_json(), "annual_cash_flow": 12 * expected.monthly_cash_flow}
    )
    for figure in ("gross_yield", "net_yield", "cap_rate", "noi", "dscr", "break_even_rent"):
        assert isinstance(analysis[figure], float), figure
    verdict = body["deal"]["verdict"]
    interval = p["interval"]
    assert verdict["price"] == core.price_verdict(
        terms["asking_price"], interval["lower"], interval["upper"]
    )
    assert verdict["cash_flow"] == ("positive" if expected.monthly_cash_flow > 0 else "negative")
    assert verdict["asking_vs_estimate"] == pytest.approx(
        (terms["asking_price"] - p["price"]) / p["price"]
    )
    assert f"is {verdict['price']} the model's interval" in verdict["summary"]


def test_every_term_is_listed_given_or_default_with_its_rule(
    clients: dict[str, FlaskClient],
) -> None:
    status, body = post(clients["analyze"], {"property": HOUSE, "terms": {"monthly_rent": 1500}})
    assert status == 200, body
    used = body["deal"]["assumptions"]
    assert set(used) == set(TERMS)
    assert {k for k, v in used.items() if v["source"] == "given"} == {"monthly_rent"}
    assert used["monthly_rent"] == {
        "value": 1500,
        "unit": "dollars per month",
        "source": "given",
        "basis": "given",
    }
    price = body["valuation"]["price"]
    assert used["asking_price"]["value"] == price  # no asking price: the estimate
    assert used["asking_price"]["basis"] == "the model's estimate"
    assert used["interest_rate"] == {
        "value": 6.5,
        "unit": "percent per year",
        "source": "default",
        "basis": "6.50% a year",
    }
    assert used["down_payment"]["value"] == pytest.approx(0.2 * price)
    assert used["taxes"]["value"] == pytest.approx(0.015 * price)
    assert used["vacancy"]["value"] == 5.0
    assert body["deal"]["verdict"]["price"] is None  # nothing to judge without an asking price
    assert body["deal"]["verdict"]["summary"].startswith("No asking price")


def test_no_terms_at_all_is_a_deal_on_the_defaults(clients: dict[str, FlaskClient]) -> None:
    status, body = post(clients["analyze"], {"property": {"area": 1500}})
    assert status == 200, body
    price = body["valuation"]["price"]
    assert body["deal"]["assumptions"]["monthly_rent"]["value"] == pytest.approx(price / 15 / 12)
    assert {v["source"] for v in body["deal"]["assumptions"].values()} == {"default"}
    assert [w["field"] for w in body["valuation"]["warnings"]][:1]  # imputed features said


def test_a_down_payment_in_percent_and_a_rate_sent_as_a_fraction(
    clients: dict[str, FlaskClient],
) -> None:
    terms = {"asking_price": 200_000, "down_payment_percent": 25, "interest_rate": 0.065}
    status, body = post(clients["analyze"], {"property": HOUSE, "terms": terms})
    assert status == 200, body
    used = body["deal"]["assumptions"]
    assert used["down_payment"]["value"] == 50_000
    assert used["down_payment"]["source"] == "given"
    assert used["down_payment"]["basis"] == "25% of the price"
    (warning,) = body["deal"]["warnings"]
    assert warning["field"] == "terms.interest_rate"
    assert "send 6.5" in warning["message"]


def test_chat_and_analyze_agree_on_every_figure(clients: dict[str, FlaskClient]) -> None:
    """The same house and terms through chat's deal answer and through analyze."""
    chat_terms: dict[str, float] = {"asking_price": 205_000, "monthly_rent": 1_650}
    chat_terms["down_payment"] = 41_000
    chat_terms |= {"rate": 6.5, "term_years": 30, "vacancy": 4, "hoa": 25}
    terms = {("interest_rate" if k == "rate" else k): v for k, v in chat_terms.items()}
    _, analyzed = post(clients["analyze"], {"property": HOUSE, "terms": terms})
    message = {"role": "user", "content": "Is this a good deal?"}
    status, chat = post(
        clients["chat"], {"messages": [message], "property": HOUSE, "deal": chat_terms}
    )
    assert status == 200, chat
    deal = chat["facts"]["deal"]
    assert chat["facts"]["estimate"]["price"] == analyzed["valuation"]["price"]
    figures = dict(analyzed["deal"]["analysis"])
    del figures["annual_cash_flow"]
    assert deal["analysis"] == figures  # exactly: one core, one code path
    assert deal["verdict"] == analyzed["deal"]["verdict"]["price"]
    assert deal["asking_vs_estimate"] == analyzed["deal"]["verdict"]["asking_vs_estimate"]
    used = analyzed["deal"]["assumptions"]
    assert deal["inputs"]["taxes"] == used["taxes"]["value"]
    assert deal["inputs"]["rate"] == used["interest_rate"]["value"] / 100
    # Defaults too: with no terms, both price the deal at the estimate on the same rules.
    _, bare = post(clients["analyze"], {"property": HOUSE})
    _, chat_bare = post(clients["chat"], {"messages": [message], "property": HOUSE})
    figures = dict(bare["deal"]["analysis"])
    del figures["annual_cash_flow"]
    assert chat_bare["facts"]["deal"]["analysis"] == figures


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"property": HOUSE, "terms": {"interest_rate": 250}}, "terms.interest_rate"),
        ({"property": HOUSE, "terms": {"interest_rate": -1}}, "terms.interest_rate"),
        ({"property": HOUSE, "terms": {"interest_rate": "6.5%"}}, "terms.interest_rate"),
        ({"property": HOUSE, "terms": {"asking_price": 0.5}}, "terms.asking_price"),
        ({"property": HOUSE, "terms": {"monthly_rent": 1e300}}, "terms.monthly_rent"),
        ({"property": HOUSE, "terms": {"term_years": 30.5}}, "terms.term_years"),
        ({"property": HOUSE, "terms": {"term_years": 0}}, "terms.term_years"),
        ({"property": HOUSE, "terms": {"vacancy": 101}}, "terms.vacancy"),
        ({"property": HOUSE, "terms": {"hoa": True}}, "terms.hoa"),
        ({"property": HOUSE, "terms": {"rate": 6.5}}, "terms.rate"),  # chat's name
        ({"property": HOUSE, "terms": []}, "terms"),
        ({"property": HOUSE, "comparables": -1}, "comparables"),
        ({"property": HOUSE, "comparables": 21}, "comparables"),
        ({"property": HOUSE, "comparables": 2.5}, "comparables"),
        ({"property": HOUSE, "comparables": "5"}, "comparables"),
        ({"property": {**HOUSE, "area": "big"}}, "property.area"),
        ({"property": {**HOUSE, "Garage.Cars": float("nan")}}, "property.Garage.Cars"),
        ({"property": {"Bogus.Field": 1}}, "property.Bogus.Field"),
        ({"property": {}}, "property"),
        ({"property": [HOUSE]}, "property"),
        ({"terms": {}}, "property"),
        ({"property": HOUSE, "instances": [HOUSE]}, "instances"),
    ],
)
def test_each_class_of_bad_field_is_a_400_naming_it(
    clients: dict[str, FlaskClient], body: dict[str, Any], field: str
) -> None:
    answer = clients["analyze"].post("/", data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.get_json()
    assert field in [e["field"] for e in problem["errors"]], problem


def test_bad_terms_and_a_bad_house_are_named_in_one_answer(
    clients: dict[str, FlaskClient],
) -> None:
    body = {"property": {**HOUSE, "Overall.Qual": "high"}, "terms": {"interest_rate": 650}}
    status, problem = post(clients["analyze"], body)
    assert status == 400
    fields = [e["field"] for e in problem["errors"]]
    assert fields == ["terms.interest_rate", "property.Overall.Qual"]


def test_both_down_payments_are_a_conflict_named_twice(clients: dict[str, FlaskClient]) -> None:
    terms = {"down_payment": 40_000, "down_payment_percent": 20}
    status, problem = post(clients["analyze"], {"property": HOUSE, "terms": terms})
    assert status == 400
    assert [e["field"] for e in problem["errors"]] == [
        "terms.down_payment",
        "terms.down_payment_percent",
    ]


def test_an_oversized_body_is_a_413_before_it_is_parsed(
    serving_env: pytest.MonkeyPatch, ames_store: Path
) -> None:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    analyze = client("analyze")
    body = json.dumps({"property": {**HOUSE, "Misc.Feature": "x" * 70_000}})
    answer = analyze.post("/", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "64000" in answer.get_json()["detail"].replace(",", "")


def test_get_answers_health_schema_and_whether_analyze_applies(
    clients: dict[str, FlaskClient],
) -> None:
    info = clients["analyze"].get("/").get_json()
    assert info["status"] == "ok"
    assert info["analyze"] == {"supported": True, "reason": None}
    assert "interest_rate" in info["terms_schema"]["properties"]
    assert "area" in info["instance_schema"]["properties"]
    card = clients["analyze"].get("/model_card.md")
    assert card.status_code == 200
    assert card.mimetype == "text/markdown"


def test_comparables_are_predicts_comparable_sales(clients: dict[str, FlaskClient]) -> None:
    """The same search as predict's parameters.comparables, on the same packed row."""
    _, body = post(clients["analyze"], {"property": HOUSE, "comparables": 3})
    comparables = body["comparables"]
    assert comparables["available"] is True
    assert comparables["note"] is None
    _, predicted = post(
        clients["predict"], {"instances": [HOUSE], "parameters": {"comparables": 3}}
    )
    assert comparables["sales"] == predicted["predictions"][0]["comparables"]
    assert len(comparables["sales"]) == 3
    assert all(s["price"] > 0 for s in comparables["sales"])
    # A sparse house too: what it did not send stays out of both distances alike.
    sparse = {"area": 1500, "Overall.Qual": 6}
    _, body = post(clients["analyze"], {"property": sparse, "comparables": 3})
    _, predicted = post(
        clients["predict"], {"instances": [sparse], "parameters": {"comparables": 3}}
    )
    assert body["comparables"]["sales"] == predicted["predictions"][0]["comparables"]
    _, none = post(clients["analyze"], {"property": HOUSE, "comparables": 0})
    assert none["comparables"]["sales"] == []
    assert none["comparables"]["available"] is True
    _, default = post(clients["analyze"], {"property": HOUSE})
    assert len(default["comparables"]["sales"]) == 5


def test_a_classification_bundle_is_a_501_saying_analyze_needs_a_price_model(
    serving_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from estate.training.config import load_config
    from estate.training.train import train

    config = (REPO / "configs" / "mortgage_arrears.toml").read_text()
    head = config.split("[[candidates]]")[0].replace('data = "', f'data = "{REPO}/')
    one = '[[candidates]]\nname = "logistic"\nestimator = "logistic"\nparams = { C = 1.0 }\n'
    gates = config[config.index("[gates]") :] if "[gates]" in config else ""
    path = tmp_path / "arrears.toml"
    path.write_text(head + one + "\n" + gates)
    cfg = load_config(path)
    train(cfg, str(REPO / "data" / "mortgage_arrears.csv"), str(tmp_path / "store"), quiet=True)
    serving_env.setenv("ESTATE_ARTIFACTS", str(tmp_path / "store"))
    serving_env.setenv("ESTATE_MODEL_NAME", cfg.name)
    analyze = client("analyze")
    info = analyze.get("/").get_json()
    assert info["analyze"]["supported"] is False
    answer = analyze.post("/", json={"property": {"annual_income": 50_000}})
    assert answer.status_code == 501
    assert answer.headers["Content-Type"] == "application/problem+json"
    detail = answer.get_json()["detail"]
    assert "analyze needs a price model" in detail
    assert "classification" in detail
    # A malformed body is still named first: the caller's mistake is a 400, not a 501.
    assert analyze.post("/", json={"property": 1}).status_code == 400


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
term_names = st.sampled_from([*TERMS, "down_payment_percent", "rate", "x"])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with any terms set to anything, house fields broken or dropped."""
    terms = draw(st.dictionaries(term_names, values | st.floats(0, 1e9), max_size=5))
    house = dict(HOUSE)
    for key in draw(st.lists(st.sampled_from(sorted(HOUSE)), unique=True, max_size=3)):
        house[key] = draw(values)
    body: dict[str, Any] = {"property": house, "terms": terms}
    if draw(st.booleans()):
        body["comparables"] = draw(values)
    return body


@pytest.fixture(scope="module")
def analyze_client(ames_store: Path) -> Iterator[FlaskClient]:
    """One analyze client for every generated request (hypothesis reruns the test body)."""
    import estate.serving.versions as versions

    with pytest.MonkeyPatch.context() as env:
        env.setenv("ESTATE_ARTIFACTS", str(ames_store))
        env.delenv("ESTATE_MODEL_NAME", raising=False)
        env.delenv("ESTATE_MODEL_VERSION", raising=False)
        versions._holder = None
        yield client("analyze")
        versions._holder = None


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(body=requests())
def test_generated_requests_are_answered_or_refused_naming_a_field(
    analyze_client: FlaskClient, body: dict[str, Any]
) -> None:
    answer = analyze_client.post("/", data=json.dumps(body), content_type="application/json")
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code == 200:
        figures = answer.get_json()["deal"]["analysis"]
        assert all(v is None or abs(v) < float("inf") for v in figures.values())
        return
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.get_json()
    assert problem["errors"], problem
    for error in problem["errors"]:
        assert error["field"].split(".")[0].split("[")[0] in ("terms", "property", "comparables")
