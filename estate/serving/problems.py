"""HTTP errors as RFC 9457 problem+json bodies, one format for every function.

The one place where a domain error becomes a status code: the core (runtime, contract,
chat) raises `RequestError` kinds that know nothing of HTTP, and `problem_for` maps each
kind to its status, title and type (`STATUS` below). `HttpError` is the edge's response
type; the edge raises it itself only for HTTP matters (method, media type, body size,
read deadline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from estate.contract.errors import (
    CannotEstimateError,
    EstateAdvisorError,
    FieldError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoComparablesError,
    NotExplainableError,
    RequestError,
    TooLargeError,
    UnsupportedModelError,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"


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
        # Already bounded where they were collected (`ErrorList`, ESTATE_MAX_FIELD_ERRORS).
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        if self.errors_omitted:
            body["errors_omitted"] = self.errors_omitted
        return body


def bad_request(detail: str) -> HttpError:
    """A 400 the edge finds itself (a body that cannot be read to its end)."""
    return problem_for(InvalidInputError(detail))


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


#: Domain error kind → (status, title, problem type slug). Every kind the core raises is here.
STATUS: dict[type[RequestError], tuple[int, str, str]] = {
    InvalidInputError: (400, "Invalid request", "invalid-request"),
    ModelNotFoundError: (404, "Version not served", "version-not-served"),
    TooLargeError: (413, "Request too large", "request-too-large"),
    CannotEstimateError: (422, "Cannot estimate", "cannot-estimate"),
    NotExplainableError: (501, "No explainer", "no-explainer"),
    UnsupportedModelError: (501, "Not supported by this model", "unsupported-model"),
    NoComparablesError: (501, "No comparable sales", "no-comparables"),
    ModelNotReadyError: (503, "Model unavailable", "model-unavailable"),
}


def problem_for(error: RequestError | HttpError) -> HttpError:
    """The HTTP answer to a domain error (an `HttpError` is already one)."""
    if isinstance(error, HttpError):
        return error
    status, title, slug = next(spec for kind, spec in STATUS.items() if isinstance(error, kind))
    headers = {}
    if isinstance(error, ModelNotReadyError):
        headers["Retry-After"] = str(error.retry_after)
    return HttpError(status, title, error.detail, slug, error.errors, headers, error.errors_omitted)
