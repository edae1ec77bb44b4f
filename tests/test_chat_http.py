"""System tier for chat: the real functions-framework server, and what serving imports."""

from __future__ import annotations

from pathlib import Path

import requests
from test_http import serve

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
