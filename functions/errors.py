"""HTTP errors as RFC 9457 problem+json bodies, one format for every function."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from model_export.errors import EstateAdvisorError

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
    """An error with an HTTP status; `to_problem` renders the body."""

    status: int
    title: str
    detail: str
    slug: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://github.com/estate-advisor/estate-advisor#{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        return body


def bad_request(detail: str, errors: list[FieldError] | None = None) -> HttpError:
    return HttpError(400, "Invalid request", detail, "invalid-request", errors or [])


def unprocessable(detail: str, errors: list[FieldError] | None = None) -> HttpError:
    return HttpError(422, "Cannot estimate", detail, "cannot-estimate", errors or [])


def require_finite(row: int, numbers: Iterable[float], warnings: list[dict[str, str]]) -> None:
    """Extreme (finite) inputs can push an output to infinity: answer 422 naming the
    out-of-range fields rather than fail to encode the response (a 500)."""
    if all(math.isfinite(v) for v in numbers):
        return
    errors = [
        FieldError(f"instances[{row}].{w['field']}", w["message"], w["code"])
        for w in warnings
        if w["code"] == "out_of_range"
    ]
    raise unprocessable(
        f"instances[{row}] is so far outside the training data that the answer is not a "
        "finite number; bring the fields below closer to their training range.",
        errors,
    )


def too_large(detail: str) -> HttpError:
    return HttpError(413, "Request too large", detail, "request-too-large")


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
