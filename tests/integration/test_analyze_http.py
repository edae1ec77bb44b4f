"""System tier for analyze: the real functions-framework server, one house and one deal
over HTTP; the bad fields, the body limit and a classification bundle answered as
problem+json, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from http_server import serve

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((REPO / "examples" / "analyze_ames.json").read_text())
HOUSE = EXAMPLE["property"]


@pytest.fixture(scope="module")
def urls(ames_store: Path) -> Iterator[dict[str, str]]:
    with (
        serve(ames_store, "ames", "analyze") as analyze,
        serve(ames_store, "ames", "predict") as predict,
    ):
        yield {"analyze": analyze, "predict": predict}


def test_a_house_and_a_deal_over_http(urls: dict[str, str]) -> None:
    answer = requests.post(urls["analyze"], json=EXAMPLE, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    predicted = requests.post(urls["predict"], json={"instances": [HOUSE]}, timeout=30).json()
    assert body["valuation"]["price"] == predicted["predictions"][0]["price"]
    assert body["valuation"]["interval"] == predicted["predictions"][0]["interval"]
    assert answer.headers["X-Model-Version"] == body["model"]["version"]
    deal = body["deal"]
    for figure in ("gross_yield", "net_yield", "cap_rate", "noi", "monthly_cash_flow", "dscr"):
        assert isinstance(deal["analysis"][figure], float), figure
    assert deal["analysis"]["break_even_rent"] > 0
    assert deal["assumptions"]["interest_rate"] == {
        "value": 6.5,
        "unit": "percent per year",
        "source": "given",
        "basis": "given",
    }
    assert deal["assumptions"]["taxes"]["source"] == "default"
    assert deal["verdict"]["price"] in ("below", "inside", "above")
    sales = body["comparables"]["sales"]
    assert len(sales) == EXAMPLE["comparables"] == 5
    assert [s["distance"] for s in sales] == sorted(s["distance"] for s in sales)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"property": HOUSE, "terms": {"interest_rate": 650}}, "terms.interest_rate"),
        ({"property": HOUSE, "terms": {"monthly_rent": "1650"}}, "terms.monthly_rent"),
        ({"property": {**HOUSE, "Overall.Qual": "high"}}, "property.Overall.Qual"),
        ({"property": HOUSE, "comparables": 1000}, "comparables"),
        ({"house": HOUSE}, "house"),
    ],
)
def test_bad_fields_are_400_problems_naming_them(
    urls: dict[str, str], body: dict[str, object], field: str
) -> None:
    answer = requests.post(urls["analyze"], json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]]


def test_malformed_and_oversized_bodies_are_refused(urls: dict[str, str]) -> None:
    url = urls["analyze"]
    broken = requests.post(
        url, data=b'{"property": {', headers={"Content-Type": "application/json"}, timeout=30
    )
    assert broken.status_code == 400
    assert broken.headers["Content-Type"] == "application/problem+json"
    text = requests.post(url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=30)
    assert text.status_code == 415
    big = json.dumps({"property": HOUSE, "pad": "x" * 70_000}).encode()
    answer = requests.post(url, data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert requests.get(url, timeout=10).status_code == 200  # still up


def test_get_links_the_model_card_it_serves(urls: dict[str, str]) -> None:
    info = requests.get(urls["analyze"], timeout=10).json()
    assert info["analyze"]["supported"] is True
    card = info["model_card"]
    answer = requests.get(urls["analyze"].rstrip("/") + "/model_card.md", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/markdown")
    assert len(answer.content) == card["bytes"]


def test_a_classification_bundle_answers_that_analyze_needs_a_price_model(
    tmp_path: Path,
) -> None:
    from estate.training.config import load_config
    from estate.training.train import train

    config = (REPO / "configs" / "quick_sale.toml").read_text()
    head = config.split("[[candidates]]")[0].replace('data = "data/', f'data = "{REPO}/data/')
    path = tmp_path / "quick.toml"
    path.write_text(
        head + '[[candidates]]\nname = "logistic"\nestimator = "logistic"\nparams = { C = 1.0 }\n'
        "\n[gates]\nmin = { roc_auc = 0.5 }\n"
    )
    cfg = load_config(path)
    train(cfg, str(REPO / "data" / "quick_sale.csv"), str(tmp_path / "store"), quiet=True)
    with serve(tmp_path / "store", cfg.name, "analyze") as url:
        assert requests.get(url, timeout=10).json()["analyze"]["supported"] is False
        answer = requests.post(url, json={"property": {"list_price": 250_000}}, timeout=30)
        assert answer.status_code == 501
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert "analyze needs a price model" in answer.json()["detail"]
