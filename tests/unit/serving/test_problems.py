"""The one table from domain errors to HTTP answers (`estate.serving.problems`).

The core raises `RequestError` kinds that know nothing of HTTP; these tests hold that
every kind has exactly one status, and that an error raised anywhere under `handle`
reaches the caller as that status with an RFC 9457 body naming its fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import flask
import pytest

from estate.contract import errors
from estate.contract.errors import FieldError, RequestError
from estate.serving.http import handle
from estate.serving.problems import PROBLEM_CONTENT_TYPE, STATUS, HttpError, problem_for
from estate.serving.settings import HttpSettings


def _kinds(base: type[RequestError]) -> Iterator[type[RequestError]]:
    for kind in base.__subclasses__():
        yield kind
        yield from _kinds(kind)


def test_every_domain_error_kind_has_one_status() -> None:
    kinds = set(_kinds(RequestError))
    assert kinds == set(STATUS)  # a new kind must be given its status here, nowhere else
    assert {k.__module__ for k in kinds} == {errors.__name__}
    statuses = {kind: STATUS[kind][0] for kind in kinds}
    assert statuses == {
        errors.InvalidInputError: 400,
        errors.ModelNotFoundError: 404,
        errors.TooLargeError: 413,
        errors.CannotEstimateError: 422,
        errors.NotExplainableError: 501,
        errors.NoComparablesError: 501,
        errors.UnsupportedModelError: 501,
        errors.ModelNotReadyError: 503,
    }


def test_field_errors_and_omitted_count_carry_over_and_retry_after_is_a_header() -> None:
    bad = errors.InvalidInputError(
        "2 invalid field(s)", [FieldError("instances[0].area", "must be a number", "x")], 1
    )
    problem = problem_for(bad).to_problem()
    assert problem["status"] == 400
    assert problem["type"].endswith("#invalid-request")
    assert problem["errors"] == [
        {"field": "instances[0].area", "message": "must be a number", "type": "x"}
    ]
    assert problem["errors_omitted"] == 1
    busy = problem_for(errors.ModelNotReadyError("The store is unreachable.", 7))
    assert (busy.status, busy.headers) == (503, {"Retry-After": "7"})
    edge = HttpError(405, "Method not allowed", "Use GET.", "method-not-allowed")
    assert problem_for(edge) is edge


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (errors.ModelNotReadyError("No servable model.", 5), 503),
        (errors.NotExplainableError("No explainer."), 501),
        (errors.NoComparablesError("No comparable sales."), 501),
        (errors.UnsupportedModelError("analyze needs a price model."), 501),
        (errors.CannotEstimateError("Not finite.", [FieldError("deal.rate", "given", "x")]), 422),
    ],
)
def test_a_domain_error_raised_in_a_handler_is_answered_as_problem_json(
    raised: RequestError, status: int
) -> None:
    def fail() -> None:
        raise raised

    with flask.Flask("t").test_request_context("/", method="GET"):
        response = handle(
            flask.request, on_get=fail, on_post=lambda r: None, settings=HttpSettings()
        )
    assert response.status_code == status
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    body = json.loads(response.get_data())
    assert (body["status"], body["detail"]) == (status, raised.detail)
    assert [e["field"] for e in body.get("errors", [])] == [e.field for e in raised.errors]
    if status == 503:
        assert response.headers["Retry-After"] == "5"
