"""An LLM that fails, scripted: timeouts and server errors retried a bounded number of
times, malformed or endless replies, one deadline for the whole exchange and a size limit
on replies; each ends in the local engine's answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _chat_llm import HOUSE, REPO, ask, chat_client
from flask.testing import FlaskClient
from llm_server import Drip, ScriptedLLM, message, reply, slow, tool_call

#: The `llm` (a scripted LLM server) and `chat` (a client of chat wired to it) fixtures.
pytest_plugins = ("_chat_llm",)


def test_timeout_is_retried_then_falls_back(chat: FlaskClient, llm: ScriptedLLM) -> None:
    llm.script = [slow(2.0, message("late")), slow(2.0, message("late"))]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert len(llm.requests) == 2  # one retry, then give up: bounded
    assert body["engine"] == "local"
    assert "timed out after 0.5 s (after 2 attempts)" in body["reply"]
    assert body["facts"]["estimate"]["price"] > 0


def test_server_error_then_success_is_retried(chat: FlaskClient, llm: ScriptedLLM) -> None:
    llm.script = [
        reply({"error": "overloaded"}, status=503),
        reply(message("Hello! Tell me about the house.")),
    ]
    body = ask(chat, "hello", property=HOUSE)
    assert body["engine"] == "llm:test-model"
    assert len(llm.requests) == 2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"<html>gateway</html>", "malformed reply"),
        ({"choices": []}, "malformed reply"),
        (message(None, [{"id": "x", "type": "function"}]), "malformed tool call"),
        (message("   "), "empty reply"),
    ],
)
def test_malformed_reply_falls_back(
    chat: FlaskClient, llm: ScriptedLLM, payload: Any, reason: str
) -> None:
    llm.script = [reply(payload)]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "local"
    assert reason in body["reply"]


def test_endless_tool_calls_are_cut_off(chat: FlaskClient, llm: ScriptedLLM) -> None:
    llm.script = [
        reply(message(None, [tool_call(f"c{i}", "estimate_value", {})])) for i in range(4)
    ]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert len(llm.requests) == 4
    assert "kept calling tools after 4 rounds" in body["reply"]


# -- one deadline, bounded replies ---------------------------------------------------------------


def test_the_whole_exchange_has_one_deadline(
    llm: ScriptedLLM, serving_env: pytest.MonkeyPatch
) -> None:
    """Five retries of 0.5 s each would take 3 s; a 1.2 s budget stops them, and says so."""
    serving_env.setenv("ESTATE_LLM_MAX_RETRIES", "5")
    serving_env.setenv("ESTATE_LLM_DEADLINE_SECONDS", "1.2")
    chat = chat_client()
    llm.script = [slow(2.0, message("late")) for _ in range(6)]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "local"
    assert len(llm.requests) < 6
    assert "time budget ran out" in body["reply"]
    assert body["facts"]["estimate"]["price"] > 0


def test_a_reply_dripped_byte_by_byte_is_cut_at_the_deadline(
    llm: ScriptedLLM, serving_env: pytest.MonkeyPatch
) -> None:
    """Each byte arrives well within the per-call timeout; only the deadline ends it."""
    serving_env.setenv("ESTATE_LLM_DEADLINE_SECONDS", "1.0")
    chat = chat_client()
    data = json.dumps(message("Hello! Tell me about the house.")).encode()
    llm.script = [lambda _: (200, Drip(data, pause=0.05))]
    body = ask(chat, "hello", property=HOUSE)
    assert body["engine"] == "local"
    assert "1 s time budget" in body["reply"]


def test_a_status_line_and_headers_dripped_are_cut_at_the_deadline(
    llm: ScriptedLLM, serving_env: pytest.MonkeyPatch
) -> None:
    """Before any body: http.client reads the head line by line, each read within the
    per-call timeout; the deadline's watchdog shuts the socket."""
    serving_env.setenv("ESTATE_LLM_DEADLINE_SECONDS", "1.0")
    chat = chat_client()
    head = b"HTTP/1.0 200 OK\r\nX-Pad: " + b"a" * 60_000 + b"\r\n\r\n"  # 750 s of drip
    body = json.dumps(message("Hello! Tell me about the house.")).encode()
    llm.script = [lambda _: (200, Drip(head + body, pause=0.05, size=4, raw=True))]
    answer = ask(chat, "hello", property=HOUSE)
    assert answer["engine"] == "local"
    assert "1 s time budget" in answer["reply"]


@pytest.mark.parametrize("length", [True, False])
def test_a_reply_over_the_size_limit_is_refused(
    llm: ScriptedLLM, serving_env: pytest.MonkeyPatch, length: bool
) -> None:
    serving_env.setenv("ESTATE_LLM_MAX_RESPONSE_BYTES", "4096")
    chat = chat_client()
    data = json.dumps(message("Hello! " + "x" * 100_000)).encode()
    llm.script = [lambda _: (200, Drip(data, size=8192, length=length))]
    body = ask(chat, "hello", property=HOUSE)
    assert body["engine"] == "local"
    assert "sent a reply larger than 4096 bytes" in body["reply"]


def test_default_deadline_fits_inside_the_gateway_and_function_timeouts() -> None:
    """The budget is derived from infra: below chat's gateway deadline and its timeout,
    with room for the local engine's answer after it."""
    import re

    from estate.serving.function_settings import ChatSettings

    variables = (REPO / "infra" / "variables.tf").read_text()
    match = re.search(r"chat\s*=\s*\{\s*timeout_seconds\s*=\s*(\d+)", variables)
    assert match, "chat's timeout_seconds in infra/variables.tf"
    timeout = float(match[1])
    gateway = (REPO / "infra" / "openapi.yaml").read_text().split("/chat:", 1)[1]
    deadlines = [float(d) for d in re.findall(r"deadline:\s*([\d.]+)", gateway)[:2]]
    budget = ChatSettings().llm_deadline_seconds
    assert budget + 10 <= min([timeout, *deadlines])
