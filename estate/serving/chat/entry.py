"""The ``chat`` function: an investment advisor grounded in the served model.

POST ``{"messages": [...], "property": {...}, "deal": {...}}`` → ``{"reply", "facts",
"engine", "model"}``. The local engine answers by default, offline; when an LLM is
configured it answers through the same tools, and the local engine takes over (and says
so) whenever the LLM fails or states a figure no tool produced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask

from estate.contract.errors import FieldError, TooLargeError
from estate.runtime.finite import require_finite
from estate.runtime.serving_model import ServingModel, model_info
from estate.serving.advice_requests import ChatRequest
from estate.serving.chat.advisor import engine, llm_engine
from estate.serving.chat.advisor.request import parse_chat_request
from estate.serving.endpoint import serve
from estate.serving.function_settings import ChatSettings
from estate.serving.versions import holder


def _too_large(detail: str, field: str) -> TooLargeError:
    return TooLargeError(detail, [FieldError(field, detail, "too_large")])


def check_limits(body: Any, settings: ChatSettings) -> None:
    """413 naming the field when the conversation is too long, before any parsing work."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return
    messages = body["messages"]
    if len(messages) > settings.chat_max_messages:
        raise _too_large(
            f"{len(messages)} messages; the limit is {settings.chat_max_messages}. "
            "Send only the recent history.",
            "messages",
        )
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and len(content) > settings.chat_max_message_chars:
            raise _too_large(
                f"Message {i} has {len(content)} characters; the limit is "
                f"{settings.chat_max_message_chars}. Shorten it.",
                f"messages[{i}].content",
            )


def chat_body(model: ServingModel, body: Any, settings: ChatSettings) -> dict[str, Any]:
    """Validate a chat request and answer it with the configured engine."""
    check_limits(body, settings)
    request = parse_chat_request(body, settings.max_field_errors)
    if settings.llm_base_url:
        result = llm_engine.answer(model, settings, request)
    else:
        result = engine.answer(model, settings, request)
    answer = {
        "reply": result.reply,
        "facts": result.facts,
        "engine": result.engine,
        "model": model_info(model),
    }
    # Every tool checked its own figures; this is the one check of all of them together.
    require_finite(answer, "answer", _inputs(request))
    return answer


def _inputs(request: ChatRequest) -> list[FieldError]:
    """The numbers the caller gave, to name in a 422 when an answer is not finite."""
    given = {f"property.{k}": v for k, v in (request.property or {}).items()}
    given |= {f"deal.{k}": v for k, v in (request.deal.given() if request.deal else {}).items()}
    return [
        FieldError(k, f"{v:g} was given", "input")
        for k, v in given.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]


def describe(model: ServingModel, settings: ChatSettings) -> dict[str, Any]:
    """Health, model identity, engine and the request's JSON Schema (the GET answer)."""
    return {
        "status": "ok",
        "model": model_info(model),
        "engine": f"llm:{settings.llm_model}" if settings.llm_base_url else "local",
        "request_schema": ChatRequest.model_json_schema(),
        "features": model.feature_names,
    }


def entry_point(settings: ChatSettings | None = None) -> Callable[[flask.Request], flask.Response]:
    """The ``chat`` function, its settings read once (main.py resolves it on first use)."""
    settings = settings or ChatSettings()
    holder(settings).need_explainers()  # the drivers explain: built and checked at load

    def on_get(model: ServingModel) -> dict[str, Any]:
        return describe(model, settings)

    def answer(model: ServingModel, _: flask.Request, body: Any) -> dict[str, Any]:
        return chat_body(model, body, settings)

    def chat(request: flask.Request) -> flask.Response:
        """HTTP entry point (functions-framework target ``chat``)."""
        return serve(request, on_get, answer, settings, settings.chat_max_request_bytes)

    return chat
