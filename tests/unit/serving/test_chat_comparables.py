"""Chat answers "what did similar houses sell for?" from the same comparables predict gives,
in the local engine and as an LLM tool; a model without them says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import function_client

from estate.runtime.serving_model import ServingModel
from estate.serving.advice_requests import ChatRequest
from estate.serving.chat.advisor import llm_engine
from estate.serving.chat.advisor.guard import invented_money, numbers_in
from estate.serving.function_settings import ChatSettings
from estate.storage.registry import promote, read_bundle, write_bundle
from estate.storage.store import LocalStore

HOUSE = "3 bed, 2 bath, 1,800 sq ft, built 1995, in College Creek"
FEATURES = {
    "Bedroom.AbvGr": 3.0,
    "Full.Bath": 2.0,
    "area": 1800.0,
    "Year.Built": 1995.0,
    "Year.Remod.Add": 1995.0,
    "Neighborhood": "CollgCr",
}


def chat_answer(store: Path, env: pytest.MonkeyPatch, text: str) -> dict[str, Any]:
    env.setenv("ESTATE_ARTIFACTS", str(store))
    answer = function_client("chat").post(
        "/", json={"messages": [{"role": "user", "content": text}]}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    assert invented_money(body["reply"], numbers_in(body["facts"])) == []
    return body


@pytest.mark.parametrize(
    "question",
    [
        "What did similar houses sell for?",
        "Show me comparable sales",
        "any comps nearby?",
    ],
)
def test_the_local_engine_quotes_predicts_comparables(
    serving_env: pytest.MonkeyPatch, ames_store: Path, question: str
) -> None:
    body = chat_answer(ames_store, serving_env, f"{HOUSE}. {question}")
    found = body["facts"]["comparables"]
    predicted = (
        function_client("predict")
        .post("/", json={"instances": [FEATURES], "parameters": {"comparables": 5}})
        .get_json()["predictions"][0]["comparables"]
    )
    assert found["sales"] == predicted
    prices = sorted(s["price"] for s in predicted)
    assert (found["low"], found["high"]) == (prices[0], prices[-1])
    assert found["median_price"] == prices[2]
    reply = body["reply"]
    assert "Similar houses sold for" in reply
    for sale in predicted:
        assert f"${sale['price']:,.0f}" in reply
        assert sale["sale_date"] in reply
    assert "The model values this house at" in reply  # the estimate comes first


def test_a_model_without_comparables_says_why_in_chat(
    serving_env: pytest.MonkeyPatch, ames_store: Path, tmp_path: Path
) -> None:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    plain = bundle.manifest.model_copy(update={"comparables": None, "version": "v-plain"})
    store = LocalStore(tmp_path)
    write_bundle(store, plain, bundle.model_bytes, bundle.explainer_bytes, bundle.card_bytes)
    promote(store, "ames", "v-plain")
    body = chat_answer(tmp_path, serving_env, f"{HOUSE}. What did similar houses sell for?")
    assert "unavailable" in body["facts"]["comparables"]
    assert "has no comparable sales" in body["reply"]
    assert "declares no [comparables] columns" in body["reply"]


def test_the_llm_has_a_comparable_sales_tool(ames_store: Path) -> None:
    names = [t["function"]["name"] for t in llm_engine.TOOLS]
    assert "comparable_sales" in names
    bundle = read_bundle(LocalStore(ames_store), "ames")
    model = ServingModel(
        bundle.manifest, bundle.model_bytes, 1, comparables_bytes=bundle.comparables_bytes
    )
    request = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "similar sales?"}], "property": FEATURES}
    )
    session = llm_engine._Session(model, ChatSettings(), request)
    result = session.run("comparable_sales", "{}")
    assert len(result["sales"]) == 5
    assert session.facts["comparable_sales"] is result
    changed = session.run("comparable_sales", '{"features": {"area": 2600}}')
    assert changed["sales"] != result["sales"]
