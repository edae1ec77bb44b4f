"""What the LLM-engine tests (test_chat_llm_*.py) share: the key, the house, the scripted
chat-completions server the chat function asks, a fresh chat function, and the check that
the key never shows up in logs, output or replies.

Each test module wraps `scripted_chat_llm` in its own `llm` fixture (a second conftest.py
would shadow the `conftest` module tests import helpers from).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from llm_server import ScriptedLLM, scripted_llm

REPO = Path(__file__).resolve().parents[3]
KEY = "sk-test-9f8e7d6c5b4a"
SECRET = "projects/estate/secrets/llm-key/versions/latest"
HOUSE = {"area": 1800, "Neighborhood": "CollgCr", "Year.Built": 1995, "Full.Bath": 2}


@contextmanager
def scripted_chat_llm(
    serving_env: pytest.MonkeyPatch, ames_store: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[ScriptedLLM]:
    """The scripted LLM server, and the environment that points the chat function at it."""
    from estate.serving.chat.secrets import clear_cache

    caplog.set_level(logging.DEBUG)  # everything any library logs is checked for the key
    with scripted_llm() as server:
        serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
        serving_env.setenv("ESTATE_LLM_BASE_URL", server.url)
        serving_env.setenv("ESTATE_LLM_MODEL", "test-model")
        serving_env.setenv("ESTATE_LLM_API_KEY", KEY)
        serving_env.setenv("ESTATE_LLM_TIMEOUT_SECONDS", "0.5")
        serving_env.setenv("ESTATE_LLM_MAX_RETRIES", "1")
        clear_cache()
        yield server
        clear_cache()


def chat_client() -> FlaskClient:
    """A fresh chat function: it reads its settings (the environment now) once."""
    from functions_framework import create_app

    return create_app(target="chat", source=str(REPO / "main.py")).test_client()


def ask(chat: FlaskClient, text: str, **extra: Any) -> dict[str, Any]:
    answer = chat.post("/", json={"messages": [{"role": "user", "content": text}], **extra})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    return body


def no_key_anywhere(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], *texts: str
) -> None:
    out, err = capfd.readouterr()
    assert caplog.records  # the check below would be vacuous without any logging
    for text in (caplog.text, out, err, *texts):
        assert KEY not in text


@pytest.fixture
def llm(
    serving_env: pytest.MonkeyPatch, ames_store: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[ScriptedLLM]:
    """A scripted LLM server that chat is configured to call (`scripted_chat_llm`)."""
    with scripted_chat_llm(serving_env, ames_store, caplog) as server:
        yield server


@pytest.fixture
def chat(llm: ScriptedLLM) -> FlaskClient:
    """A test client of the chat function, talking to `llm`."""
    return chat_client()
