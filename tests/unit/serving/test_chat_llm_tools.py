"""The LLM engine over real HTTP against a scripted chat-completions server: tool calls
and a grounded reply, replies stating a figure no tool produced (the local engine answers
instead), and tool calls whose arguments do not fit the tool.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _chat_llm import HOUSE, KEY, ask, no_key_anywhere
from flask.testing import FlaskClient
from llm_server import ScriptedLLM, message, reply, tool_call, tool_results

#: The `llm` (a scripted LLM server) and `chat` (a client of chat wired to it) fixtures.
pytest_plugins = ("_chat_llm",)


def price_quote(body: dict[str, Any]) -> tuple[int, Any]:
    """The LLM's final turn: quote the estimate the tool returned, rounded."""
    (result,) = tool_results(body).values()
    return 200, message(f"The model puts it at about ${result['price']:,.0f}.")


def test_tool_use_round_trip(
    chat: FlaskClient,
    llm: ScriptedLLM,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    llm.script = [
        reply(message(None, [tool_call("call_1", "estimate_value", {})])),
        price_quote,
    ]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "llm:test-model"
    price = body["facts"]["estimate_value"]["price"]
    assert body["reply"] == f"The model puts it at about ${price:,.0f}."
    # The wire: our tools offered, the key sent as a bearer token, the result sent back.
    first, second = llm.requests
    assert first["model"] == "test-model"
    assert {t["function"]["name"] for t in first["tools"]} == {
        "estimate_value",
        "value_drivers",
        "comparable_sales",
        "what_if",
        "analyze_deal",
    }
    assert llm.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_1"
    assert tool_results(second)["call_1"]["price"] == price
    assert "CollgCr" in first["messages"][1]["content"]  # the known house is in context
    no_key_anywhere(caplog, capfd, body["reply"])


def test_what_if_and_deal_tools_with_arguments(chat: FlaskClient, llm: ScriptedLLM) -> None:
    def quote(body: dict[str, Any]) -> tuple[int, Any]:
        results = tool_results(body)
        diff = results["c1"]["difference"]
        flow = results["c2"]["analysis"]["monthly_cash_flow"]
        return 200, message(f"A bathroom adds ${diff:,.0f}; cash flow is ${flow:,.2f} a month.")

    llm.script = [
        reply(
            message(
                None,
                [
                    tool_call("c1", "what_if", {"changes": {"Full.Bath": 3}}),
                    tool_call(
                        "c2",
                        "analyze_deal",
                        {"deal": {"asking_price": 200000, "monthly_rent": 1500}},
                    ),
                ],
            )
        ),
        quote,
    ]
    body = ask(
        chat, "Should I add a bathroom, and what is the cash flow at $200,000?", property=HOUSE
    )
    assert body["engine"] == "llm:test-model", body["reply"]
    assert body["facts"]["what_if"]["changes"] == [{"feature": "Full.Bath", "from": 2.0, "to": 3.0}]
    assert body["facts"]["analyze_deal"]["inputs"]["monthly_rent"] == 1500


def test_bad_tool_arguments_go_back_to_the_llm_not_the_user(
    chat: FlaskClient, llm: ScriptedLLM
) -> None:
    def check(body: dict[str, Any]) -> tuple[int, Any]:
        error = tool_results(body)["c1"]
        assert error["fields"][0]["field"] == "features.Pool"
        return 200, message("I could not use that feature; which one did you mean?")

    llm.script = [
        reply(message(None, [tool_call("c1", "estimate_value", {"features": {"Pool": 1}})])),
        check,
    ]
    body = ask(chat, "Value it with a pool", property=HOUSE)
    assert body["engine"] == "llm:test-model"
    assert body["reply"].startswith("I could not use that feature")


def test_invented_money_figure_falls_back_to_local_engine(
    chat: FlaskClient, llm: ScriptedLLM
) -> None:
    llm.script = [
        reply(message(None, [tool_call("c1", "estimate_value", {})])),
        reply(message("It is worth $350,000, a bargain.")),
    ]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "local"
    assert "stated figures no tool produced ($350,000)" in body["reply"]
    assert "$350,000" not in body["reply"].split("\n\n", 1)[1]
    assert body["facts"]["estimate"]["price"] > 0
    assert body["facts"]["fallback"]["reason"].startswith("stated figures")


def test_tool_percentages_pass_and_invented_ones_fall_back(
    chat: FlaskClient, llm: ScriptedLLM
) -> None:
    def grounded(body: dict[str, Any]) -> tuple[int, Any]:
        deal = tool_results(body)["d1"]["analysis"]
        return 200, message(
            f"Gross yield {100 * deal['gross_yield']:.2f}%, cap rate {100 * deal['cap_rate']:.1f}%."
        )

    deal_call = tool_call("d1", "analyze_deal", {"deal": {"monthly_rent": 1500}})
    llm.script = [reply(message(None, [deal_call])), grounded]
    body = ask(chat, "What yield would I get?", property=HOUSE)
    assert body["engine"] == "llm:test-model", body["reply"]
    assert body["reply"].startswith("Gross yield ")

    llm.script = [reply(message(None, [deal_call])), reply(message("Expect a 14% yield."))]
    body = ask(chat, "What yield would I get?", property=HOUSE)
    assert body["engine"] == "local"
    assert "stated figures no tool produced (14%)" in body["reply"]


def test_tool_schemas_are_the_models_that_check_the_arguments() -> None:
    """What the LLM is offered is generated from what checks it: closed objects, no $ref."""
    from estate.serving.chat.advisor.llm_engine import TOOLS

    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    assert set(by_name) == {
        "estimate_value",
        "value_drivers",
        "comparable_sales",
        "what_if",
        "analyze_deal",
    }
    for parameters in by_name.values():
        assert parameters["type"] == "object"
        assert parameters["additionalProperties"] is False
        assert "$ref" not in json.dumps(parameters)
    assert by_name["what_if"]["required"] == ["changes"]
    deal = by_name["analyze_deal"]["properties"]["deal"]["anyOf"][0]
    assert deal["properties"]["asking_price"]["anyOf"][0]["minimum"] == 1


# -- tool calls with arguments that do not fit the tool -------------------------------------------

BAD_CALLS = [
    ("what_if", '{"changes": {"Fireplaces": 999999999}}'),
    ("what_if", '{"changes": {"Fireplaces": "=x"}}'),
    ("what_if", '{"changes": {"Neighborhood": "=x"}}'),
    ("what_if", '{"changes": {"Full.Bath": 1e308, "area": -1e308}}'),
    ("what_if", '{"changes": "add a bath"}'),
    ("what_if", '{"changes": {}}'),
    ("what_if", "{}"),
    ("estimate_value", '{"features": {"area": 1e300, "Lot.Area": 1e300}}'),
    ("estimate_value", '{"features": {"area": ' + "9" * 400 + "}}"),
    ("estimate_value", '{"features": {"area": ' + "9" * 5000 + "}}"),
    ("estimate_value", '{"features": [1, 2]}'),
    ("estimate_value", '{"features": {"area": NaN}}'),
    ("estimate_value", '{"features": {"Pool": 1}, "extra": true}'),
    ("value_drivers", '{"features": {"area": Infinity}}'),
    ("analyze_deal", '{"deal": {"asking_price": 5e-324}}'),
    ("analyze_deal", '{"deal": {"asking_price": 0, "rate": -1, "term_years": 0.5}}'),
    ("analyze_deal", '{"deal": "cheap"}'),
    ("analyze_deal", '{"deal": {"down_payment": 1e-300}, "features": {"area": 1e300}}'),
    ("drop_tables", "{}"),
    ("x" * 10_000, "{}"),
    ("estimate_value", "not json"),
    ("estimate_value", "[1]"),
    ("estimate_value", "[" * 100_000 + "]" * 100_000),
    ("estimate_value", '{"features": {"area": 1800, "pad": "' + "x" * 30_000 + '"}}'),
]


@pytest.mark.parametrize(("name", "arguments"), BAD_CALLS, ids=lambda v: str(v)[:40])
def test_tool_arguments_that_do_not_fit_go_back_to_the_llm(
    chat: FlaskClient, llm: ScriptedLLM, name: str, arguments: str
) -> None:
    """Never a 500: a tool error the LLM can read (or a finite result), then its reply."""
    results: list[Any] = []

    def check(body: dict[str, Any]) -> tuple[int, Any]:
        results.append(tool_results(body)["c1"])
        return 200, message("I could not use those figures; tell me more about the house.")

    raw = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    llm.script = [reply(message(None, [raw])), check]
    body = ask(chat, "What is it worth?", property=HOUSE)
    assert body["engine"] == "llm:test-model", body["reply"]
    (result,) = results
    assert "error" in result or json.dumps(result, allow_nan=False)


def test_bad_what_if_values_are_named_to_the_llm(chat: FlaskClient, llm: ScriptedLLM) -> None:
    results: list[Any] = []

    def check(body: dict[str, Any]) -> tuple[int, Any]:
        results.append(tool_results(body))
        return 200, message("That change is not one I can estimate.")

    llm.script = [
        reply(
            message(
                None,
                [
                    tool_call("c1", "what_if", {"changes": {"Fireplaces": 999999999}}),
                    tool_call("c2", "what_if", {"changes": {"Fireplaces": "=x"}}),
                ],
            )
        ),
        check,
    ]
    ask(chat, "What if it had a billion fireplaces?", property=HOUSE)
    (got,) = results
    assert {f["field"] for f in got["c1"]["fields"]} >= {"changes.Fireplaces"}
    assert "not a finite number" in got["c1"]["error"]
    assert got["c2"]["fields"][0]["field"] == "changes.Fireplaces"  # "=x" is not a number


def test_only_so_many_tool_calls_run_per_turn(chat: FlaskClient, llm: ScriptedLLM) -> None:
    calls = [tool_call(f"c{i}", "value_drivers", {}) for i in range(30)]
    results: list[Any] = []

    def check(body: dict[str, Any]) -> tuple[int, Any]:
        results.append(tool_results(body))
        return 200, message("Done.")

    llm.script = [reply(message(None, calls)), check]
    ask(chat, "What drives it?", property=HOUSE)
    (got,) = results
    refused = [r for r in got.values() if "at most 8 tool calls" in r.get("error", "")]
    assert len(got) == 30
    assert len(refused) == 22
