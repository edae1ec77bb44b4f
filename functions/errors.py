"""HTTP errors as RFC 9457 problem+json bodies, one format for every function."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from functions.settings import get_settings
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


def numbers_in(tree: Any) -> Iterator[float]:
    """Every float in a JSON-like answer (dicts, lists, scalars), to check them all."""
    if isinstance(tree, float):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from numbers_in(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from numbers_in(value)


Warnings = list[dict[str, str]]


def require_finite(
    row: int, numbers: Iterable[float], warnings: Warnings | Callable[[], Warnings]
) -> None:
    """The one finiteness check every returned number passes (predict, explain, chat).

    Extreme (finite) inputs can push an output to infinity or NaN: answer 422 naming
    the out-of-range fields of ``instances[row]`` rather than fail to encode the
    response (a 500). Pass `numbers_in(item)` to check a whole answer item; `warnings`
    (the row's input warnings) may be a function, called only when the check fails.
    """
    if all(math.isfinite(v) for v in numbers):
        return
    if callable(warnings):
        warnings = warnings()
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
