"""The chat request checked beyond its envelope (`estate.serving.advice_requests.ChatRequest`)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from estate.contract.errors import FieldError, InvalidInputError
from estate.serving.advice_requests import ChatRequest, DealInput
from estate.serving.requests import parse_body


def usable_terms(terms: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Deal terms read from text, kept only where the ``deal`` field would accept them.

    A conversation is resent whole, so a bad figure in an old message must not fail
    every later request: it is left out, and the reply says which and why.
    """
    try:
        DealInput.model_validate(terms)
    except ValidationError as exc:
        bad = {str(e["loc"][0]): e["msg"] for e in exc.errors(include_url=False) if e["loc"]}
        notes = [
            f"{k.replace('_', ' ')} {terms[k]:g} ({bad[k][0].lower()}{bad[k][1:]})"
            for k in bad
            if k in terms
        ]
        return {k: v for k, v in terms.items() if k not in bad}, notes
    return terms, []


def parse_chat_request(body: Any, max_field_errors: int) -> ChatRequest:
    """The validated request, or a 400 naming every bad field."""
    request = parse_body(
        ChatRequest,
        body,
        "unknown field: remove it or check the spelling",
        max_field_errors=max_field_errors,
    )
    if request.messages[-1].role != "user":
        raise InvalidInputError(
            "The last message must be the user's question.",
            [
                FieldError(
                    f"messages[{len(request.messages) - 1}].role",
                    "must be 'user'",
                    "last_message_role",
                )
            ],
        )
    return request
