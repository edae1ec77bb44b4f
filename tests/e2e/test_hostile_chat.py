"""Hostile-input tier, chat: conversations, deal and property numbers, forged history and
LLM tool calls over real HTTP.

One production server runs the local engine, one asks the local LLM test server, which
replays generated tool calls with arbitrary arguments (generators in _hostile_chat.py).
Every answer is under 500, a 200 is strict JSON with a reply, memory stays bounded, and
the API key never reaches the log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import CHUNK, MEMORY_BOUND, Client, content_types
from _hostile_chat import (
    CHAT,
    DEAL_KEYS,
    HOUSE_TEXT,
    HUGE_RATES,
    INJECTIONS,
    chat_bodies,
    tool_calls,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from llm_server import ScriptedLLM, message, reply, scripted_llm, tool_results

from bench.server import Server, run_function
from bench.targets import Target
from estate.serving.chat.advisor.guard import numbers_in

pytestmark = [pytest.mark.hostile, pytest.mark.slow]

#: One LLM-path request per this many generated chat requests (each is two LLM calls).
TOOL_SHARE = 5


def check_chat_answer(status: int, data: bytes) -> None:
    """A 200 is strict JSON (no NaN/Infinity) with a reply; anything else is under 500."""
    if status == 200:
        answer = json.loads(data, parse_constant=_refuse_constant)
        assert isinstance(answer["reply"], str), data[:300]
        assert answer["engine"] in ("local", "llm:test-model"), data[:300]


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"{name} in a 200 answer")


@pytest.fixture(scope="module")
def chat_servers(ames_store: Path) -> Iterator[tuple[Server, Server, ScriptedLLM]]:
    """(local-engine chat, LLM chat, the scripted LLM): production servers, one worker."""
    env = {"WORKERS": "1", "THREADS": "2"}
    llm_env = {
        **env,
        "ESTATE_LLM_MODEL": "test-model",
        "ESTATE_LLM_API_KEY": "sk-hostile-test\n",  # stored with a newline, as echo does
        "ESTATE_LLM_TIMEOUT_SECONDS": "5",
        "ESTATE_LLM_DEADLINE_SECONDS": "10",
    }
    ready = CHAT.body()
    with scripted_llm() as llm:
        llm.fallback = reply(message("Hello! Tell me about the house."))
        llm_env["ESTATE_LLM_BASE_URL"] = llm.url
        with (
            run_function("chat", ames_store, ready_body=ready, extra_env=env) as local,
            run_function("chat", ames_store, ready_body=ready, extra_env=llm_env) as remote,
        ):
            yield local, remote, llm


def final_turn(draw_text: str) -> Any:
    """The LLM's last turn after the tools: text, sometimes quoting a tool's number."""

    def step(body: dict[str, Any]) -> tuple[int, Any]:
        numbers = [n for r in tool_results(body).values() for n in numbers_in(r)]
        quote = f" About ${numbers[0]:,.0f}." if numbers and draw_text.startswith("q") else ""
        return 200, message(f"Here is what the tools said.{quote} {draw_text[:40]}")

    return step


def run_generated_chat(local: Client, remote: Client, llm: ScriptedLLM, examples: int) -> None:
    """`examples` generated chat requests; every `TOOL_SHARE`-th also drives the LLM path
    with generated tool calls (replayed by the local LLM server)."""
    house = Target("predict", "examples/predict_ames.json").instance()
    question = {"role": "user", "content": "What is it worth? Is $200,000 a good price?"}
    for chunk, start in enumerate(range(0, examples, CHUNK)):
        count = min(CHUNK, examples - start)

        @seed(1000 + chunk)
        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            body=chat_bodies(house),
            content_type=content_types,
            calls=tool_calls(house),
            text=st.text(max_size=40),
            turn=st.integers(0, TOOL_SHARE - 1),
        )
        def one(
            body: bytes, content_type: str | None, calls: list[Any], text: str, turn: int
        ) -> None:
            status = local.send(body, content_type)
            check_chat_answer(status, local.last)
            if turn:
                return
            llm.script = [reply(message(None, calls)), final_turn(text)]
            payload = {"messages": [question], "property": {"area": 1800, "Neighborhood": "NAmes"}}
            status = remote.send(json.dumps(payload).encode())
            assert status == 200, remote.last[:500]
            check_chat_answer(status, remote.last)
            llm.script = []

        one()


def chat_handpicked() -> dict[str, tuple[Any, set[int]]]:
    """The issue's requests and their neighbours, with the statuses each may get."""
    ask = [{"role": "user", "content": "Is it a good deal? What rent and cash flow?"}]
    house = {"area": 1800, "Neighborhood": "CollgCr"}
    history = [{"role": "user", "content": HOUSE_TEXT}, {"role": "assistant", "content": "OK."}]

    def deal(**terms: Any) -> Any:
        return {"messages": ask, "property": house, "deal": terms}

    def said(text: str) -> Any:
        return {"messages": [*history, {"role": "user", "content": text}]}

    cases: dict[str, tuple[Any, set[int]]] = {
        "valid": (CHAT.body(), {200}),
        **{f"asking_price {p!r}": (deal(asking_price=p), {400}) for p in (0, -0.0, 1e-300, 5e-324)},
        "asking_price NaN": (deal(asking_price=math.nan), {400}),
        "asking_price 1e999": (deal(asking_price=math.inf), {400}),
        "rate 1e-9": (deal(rate=1e-9, asking_price=200_000), {200}),
        "down payment 5e-324": (deal(down_payment=5e-324, asking_price=200_000), {200}),
        "every term huge": (
            deal(**dict.fromkeys(DEAL_KEYS, 1e9) | HUGE_RATES),
            {200},
        ),
        "term_years 0.5": (deal(term_years=0.5), {400}),
        "text asking $0": (said("The asking price is $0."), {200}),
        "a billion fireplaces": (said("What if I add 999999999 fireplaces?"), {422}),
        "a huge extension": (said("What if I add 999,999,999,999,999 sq ft?"), {200, 422}),
        "property 1e300": (
            {"messages": ask, "property": {"area": 1e300, "Lot.Area": 1e300}},
            {200, 422},
        ),
        "forged history": (
            {"messages": [{"role": "assistant", "content": INJECTIONS[0]}, *ask]},
            {200},
        ),
        "system role": ({"messages": [{"role": "system", "content": "x"}, *ask]}, {400}),
        "last turn assistant": ({"messages": [*ask, {"role": "assistant", "content": "x"}]}, {400}),
        "41 messages": ({"messages": ask * 41}, {413}),
        "long message": ({"messages": [{"role": "user", "content": "9" * 5000}]}, {413}),
        "3999 nines": ({"messages": [{"role": "user", "content": "9" * 3999}]}, {200}),
        "property not an object": ({"messages": ask, "property": [1]}, {400}),
        "deal not an object": ({"messages": ask, "deal": "cheap"}, {400}),
    }
    return cases


CHAT_CASES = sorted(chat_handpicked())


@pytest.mark.parametrize("case", CHAT_CASES)
def test_chat_handpicked_hostile_request(
    chat_servers: tuple[Server, Server, ScriptedLLM], case: str
) -> None:
    local, remote, _ = chat_servers
    payload, allowed = chat_handpicked()[case]
    # The LLM server's scripted LLM answers in words, so a local 422 may be its 200.
    for server, ok in ((local, allowed), (remote, allowed | ({200} if 422 in allowed else set()))):
        client = Client(server.port)
        try:
            status = client.send(json.dumps(payload, allow_nan=True).encode())
            assert status in ok, client.last[:500]
            check_chat_answer(status, client.last)
        finally:
            client.close()
        assert server.alive(), server.log_tail()


def test_chat_generated_requests_never_5xx_and_memory_stays_bounded(
    chat_servers: tuple[Server, Server, ScriptedLLM], chat_hostile_examples: int
) -> None:
    local_server, remote_server, llm = chat_servers
    local, remote = Client(local_server.port), Client(remote_server.port)
    try:
        run_generated_chat(local, remote, llm, min(300, chat_hostile_examples))
        warm = [local_server.rss_bytes(), remote_server.rss_bytes()]
        run_generated_chat(local, remote, llm, chat_hostile_examples)
        assert local.send(json.dumps(CHAT.body()).encode()) == 200
    finally:
        local.close()
        remote.close()
    for server, before in zip((local_server, remote_server), warm, strict=True):
        assert server.alive(), server.log_tail()
        grown = server.rss_bytes() - before
        assert grown < MEMORY_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB after warm-up"
    assert "sk-hostile-test" not in remote_server.log_tail(limit=10**8)
