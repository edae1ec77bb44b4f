"""System tier for chat: the real functions-framework server, and what serving imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests
from test_http import FORBIDDEN, serve

REPO = Path(__file__).resolve().parent.parent


def test_chat_conversation_over_http(ames_store: Path) -> None:
    house = "3 bed, 2 bath, 1,800 sq ft, built 1995, in College Creek"
    with serve(ames_store, "ames", target="chat") as url:
        first = requests.post(
            url, json={"messages": [{"role": "user", "content": f"What is a {house} worth?"}]},
            timeout=30,
        )  # fmt: skip
        assert first.status_code == 200
        body = first.json()
        assert body["engine"] == "local"
        history = [
            {"role": "user", "content": f"What is a {house} worth?"},
            {"role": "assistant", "content": body["reply"]},
            {"role": "user", "content": "What if I add a bathroom?"},
        ]
        second = requests.post(url, json={"messages": history}, timeout=30).json()
        assert second["facts"]["what_if"]["before"] == body["facts"]["estimate"]["price"]
        too_many = {"messages": [{"role": "user", "content": "hi"}] * 1000}
        answer = requests.post(url, json=too_many, timeout=30)
        assert answer.status_code == 413
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["errors"][0]["field"] == "messages"
        assert requests.get(url, timeout=10).json()["engine"] == "local"


def test_chat_never_imports_training_libraries_nor_cloud_clients(ames_store: Path) -> None:
    """With no LLM configured the chat function loads no Secret Manager client either."""
    code = (
        "import json, sys\n"
        "from functions_framework import create_app\n"
        "c = create_app(target='chat', source='main.py').test_client()\n"
        "msg = 'What is a 3 bed 1,800 sq ft house worth, and what drives it?'\n"
        "r = c.post('/', json={'messages': [{'role': 'user', 'content': msg}]})\n"
        "assert r.status_code == 200, r.get_data(as_text=True)\n"
        f"banned = {(*FORBIDDEN, 'google.cloud.secretmanager')!r}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in banned or m in banned\n"
        "       or any(m.startswith(b + '.') for b in banned)]\n"
        "print(json.dumps(bad))\n"
    )
    env = {**os.environ, "ESTATE_ARTIFACTS": str(ames_store)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
