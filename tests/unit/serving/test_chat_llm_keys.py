"""The LLM API key, from Secret Manager (the real client library against a local REST
endpoint) or the environment: stripped, checked, and never in a log, output or reply."""

from __future__ import annotations

import pytest
from _chat_llm import HOUSE, KEY, SECRET, ask, chat_client, no_key_anywhere
from flask.testing import FlaskClient
from llm_server import ScriptedLLM, fake_secret_manager, message, reply

#: The `llm` (a scripted LLM server) and `chat` (a client of chat wired to it) fixtures.
pytest_plugins = ("_chat_llm",)


def test_rejected_key_falls_back_without_echoing_it(
    chat: FlaskClient,
    llm: ScriptedLLM,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    llm.script = [reply({"error": {"message": f"Invalid API key {KEY}"}}, status=401)]
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert "rejected our authorisation (HTTP 401)" in body["reply"]
    assert "Invalid API key" not in body["reply"]  # the provider's text reaches logs only
    no_key_anywhere(caplog, capfd, body["reply"], str(body["facts"]))


def test_reply_leaking_the_key_is_never_shown(chat: FlaskClient, llm: ScriptedLLM) -> None:
    llm.script = [reply(message(f"Sure, my key is {KEY}."))]
    body = ask(chat, "hello", property=HOUSE)
    assert body["engine"] == "local"
    assert KEY not in body["reply"]
    assert "wrote something it must not share" in body["reply"]


def test_key_from_secret_manager_reaches_the_llm_and_no_log(
    llm: ScriptedLLM,
    serving_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with fake_secret_manager({SECRET: KEY + "\n"}) as (url, seen):
        serving_env.delenv("ESTATE_LLM_API_KEY")
        serving_env.setenv("ESTATE_LLM_API_KEY_SECRET", SECRET)
        serving_env.setenv("ESTATE_SECRET_MANAGER_ENDPOINT", url)
        chat = chat_client()
        llm.script = [reply(message("Hello! Tell me about the house.")) for _ in range(2)]
        for _ in range(2):
            assert ask(chat, "hello")["engine"] == "llm:test-model"
    assert len(seen) == 1  # read once per instance, then cached
    assert seen[0].startswith(f"/v1/{SECRET}:access")
    assert [h["Authorization"] for h in llm.headers] == [f"Bearer {KEY}"] * 2
    no_key_anywhere(caplog, capfd)


def test_missing_secret_falls_back_and_names_the_secret_in_the_log_only(
    llm: ScriptedLLM,
    serving_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_secret_manager({}) as (url, seen):
        serving_env.setenv("ESTATE_LLM_API_KEY_SECRET", SECRET)
        serving_env.setenv("ESTATE_SECRET_MANAGER_ENDPOINT", url)
        chat = chat_client()
        ask(chat, "hello", property=HOUSE)
        body = ask(chat, "What is this house worth?", property=HOUSE)
    assert len(seen) == 1  # the failure is remembered for a while, not retried per request
    assert body["engine"] == "local"
    assert "is not available (its API key could not be read)" in body["reply"]
    assert "projects/" not in body["reply"] + str(body["facts"])  # no resource name for users
    assert f"Secret Manager refused {SECRET!r} (404)" in caplog.text  # the operator's clue
    assert llm.requests == []


# -- keys from every source: stripped, checked, never in a log, output or reply -----------------


def test_key_with_a_trailing_newline_in_the_environment_is_stripped(
    llm: ScriptedLLM,
    serving_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What Cloud Run hands over from `echo KEY | gcloud secrets versions add --data-file=-`."""
    serving_env.setenv("ESTATE_LLM_API_KEY", KEY + "\n")
    chat = chat_client()
    llm.script = [reply(message("Hello! Tell me about the house."))]
    body = ask(chat, "hello")
    assert body["engine"] == "llm:test-model"
    assert llm.headers[0]["Authorization"] == f"Bearer {KEY}"
    out, err = capsys.readouterr()
    for text in (caplog.text, out, err, body["reply"]):
        assert KEY not in text


UNUSABLE = [f"{KEY}\nsecond-line", f"Bearer {KEY}", " \n ", f"{KEY}\tx"]


@pytest.mark.parametrize(
    ("source", "stored"),
    [("env", k) for k in UNUSABLE]  # an environment variable cannot hold a NUL byte
    + [("secret manager", k) for k in [*UNUSABLE, f"{KEY}\x00", f"{KEY}\u00e9"]],
)
def test_unusable_key_falls_back_and_is_never_shown(
    llm: ScriptedLLM,
    serving_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    stored: str,
    source: str,
) -> None:
    """A key no strip can fix would make http.client raise with the whole header in its
    message: it is refused before any call, the reply says only that it could not be read."""
    with fake_secret_manager({SECRET: stored}) as (url, _):
        if source == "env":
            serving_env.setenv("ESTATE_LLM_API_KEY", stored)
        else:
            serving_env.delenv("ESTATE_LLM_API_KEY")
            serving_env.setenv("ESTATE_LLM_API_KEY_SECRET", SECRET)
            serving_env.setenv("ESTATE_SECRET_MANAGER_ENDPOINT", url)
        chat = chat_client()
        body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "local"
    assert "is not available (its API key could not be read)" in body["reply"]
    assert llm.requests == []
    out, err = capsys.readouterr()
    assert "LLM API key unavailable" in caplog.text  # the operator is told, without the key
    for text in (caplog.text, out, err, body["reply"], str(body["facts"])):
        assert KEY not in text
        assert "projects/" not in body["reply"]


def test_an_http_client_error_is_caught_at_the_client_boundary(
    llm: ScriptedLLM,
    serving_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """http.client refuses a control character in the URL with a ValueError: the local
    engine answers, and nothing of the request (its headers, its key) reaches a log."""
    serving_env.setenv("ESTATE_LLM_BASE_URL", llm.url + "/\r\nX-Injected: 1")
    chat = chat_client()
    body = ask(chat, "What is this house worth?", property=HOUSE)
    assert body["engine"] == "local"
    assert "could not be called (InvalidURL)" in body["reply"]
    no_key_anywhere(caplog, capfd, body["reply"])
