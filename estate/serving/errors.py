"""HTTP errors as RFC 9457 problem+json bodies, one format for every function."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from estate.contract.errors import EstateAdvisorError
from estate.serving.settings import get_settings

PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass
class FieldError:
    """One bad field: where it is (``instances[0].Overall.Qual``), what is wrong."""

    field: str
    message: str
    type: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": self.type}


@dataclass
class HttpError(EstateAdvisorError):
    """An error with an HTTP status; `to_problem` renders the body.

    At most ``ESTATE_MAX_FIELD_ERRORS`` field errors are listed; ``errors_omitted``
    counts the others (those found but not kept, plus any beyond the cap here), so an
    answer stays small however many fields are wrong.
    """

    status: int
    title: str
    detail: str
    slug: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    errors_omitted: int = 0

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://github.com/estate-advisor/estate-advisor#{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        shown = self.errors[: get_settings().max_field_errors]
        if shown:
            body["errors"] = [e.to_json() for e in shown]
        omitted = self.errors_omitted + len(self.errors) - len(shown)
        if omitted:
            body["errors_omitted"] = omitted
        return body


def bad_request(detail: str, errors: list[FieldError] | None = None, omitted: int = 0) -> HttpError:
    return HttpError(
        400, "Invalid request", detail, "invalid-request", errors or [], errors_omitted=omitted
    )


def unprocessable(detail: str, errors: list[FieldError] | None = None) -> HttpError:
    return HttpError(422, "Cannot estimate", detail, "cannot-estimate", errors or [])


def first_non_finite(value: Any, path: str) -> str | None:
    """Where (``predictions[3].interval.upper``) the first NaN or infinity in `value` sits."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_non_finite(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_non_finite(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def out_of_range(warnings: list[dict[str, str]], where: str) -> list[FieldError]:
    """A row's out-of-range input warnings as field errors under `where` (``instances[3]``)."""
    return [
        FieldError(f"{where}.{w['field']}", w["message"], "out_of_range")
        for w in warnings
        if w.get("code") == "out_of_range"
    ]


def require_finite(
    value: Any, what: str, inputs: list[FieldError] | Callable[[], list[FieldError]]
) -> None:
    """The one finiteness check every returned number passes (predict, explain, chat).

    Extreme (finite) inputs can push an output to infinity or NaN: answer 422 naming
    `inputs` (the fields that caused it) rather than fail to encode the response (a 500).
    `inputs` may be a function, called only when the check fails (batches build their
    warnings lazily).
    """
    found = first_non_finite(value, what)
    if found is None:
        return
    raise unprocessable(
        f"{found} is not a finite number: the inputs below are so far outside the training "
        "data (or so large) that the answer overflows. Bring them closer to real values "
        "(GET this URL for the training ranges).",
        inputs() if callable(inputs) else inputs,
    )


def too_large(detail: str) -> HttpError:
    return HttpError(413, "Request too large", detail, "request-too-large")


def request_timeout(detail: str) -> HttpError:
    return HttpError(408, "Request timeout", detail, "request-timeout")


def unsupported_media(detail: str) -> HttpError:
    return HttpError(415, "Unsupported media type", detail, "unsupported-media-type")


def method_not_allowed(allowed: str) -> HttpError:
    return HttpError(
        405,
        "Method not allowed",
        f"Use {allowed}: GET for health and the input schema, POST to predict.",
        "method-not-allowed",
        headers={"Allow": allowed},
    )


def unavailable(detail: str, retry_after: int) -> HttpError:
    return HttpError(
        503,
        "Model unavailable",
        detail,
        "model-unavailable",
        headers={"Retry-After": str(retry_after)},
    )
