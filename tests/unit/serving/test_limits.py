"""Serving limits in-process: every refusal is a 4xx problem+json that says the limit.

Each class of request that used to cost an instance memory or a 5xx has a test here
(field errors, JSON value budget, explain's instance limit, warnings of large batches,
answer size, non-finite answers, hostile header values); the same classes go over real
HTTP in tests/e2e/test_hostile_limits.py and tests/integration/test_body_limits.py, and their
memory cost is measured by bench/memory.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import flask
import pytest
from conftest import function_client as client

from estate.contract.bundle import Manifest
from estate.runtime.finite import require_finite
from estate.serving.http import handle, read_json_body
from estate.serving.settings import HttpSettings

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]


@pytest.fixture
def env(serving_env: pytest.MonkeyPatch, ames_store: Path) -> pytest.MonkeyPatch:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return serving_env


def limit(env: pytest.MonkeyPatch, name: str, value: int | float) -> None:
    """Set a limit for the functions built after this (each reads its settings once)."""
    env.setenv(f"ESTATE_{name}", str(value))


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/problem+json"
    body: dict[str, Any] = answer.get_json()
    assert body["status"] == status
    return body


# -- field errors: the first 50 listed, the rest counted -------------------------------------


@pytest.mark.parametrize("target", ["predict", "explain"])
def test_many_unknown_keys_list_the_first_50_and_count_the_rest(
    env: pytest.MonkeyPatch, target: str
) -> None:
    row = {**EXAMPLE, **{f"x{i}": i for i in range(20_000)}}
    body = problem(client(target).post("/", json={"instances": [row]}), 400)
    assert len(body["errors"]) == 50
    assert body["errors_omitted"] == 20_000 - 50
    assert body["detail"].startswith("20000 invalid field(s)")
    assert body["errors"][0] == {
        "field": "instances[0].x0",
        "message": "unknown field: remove it or check the spelling (GET lists the fields)",
        "type": "extra_forbidden",
    }


def test_wrong_cells_in_every_row_are_counted_and_named_by_their_own_row(
    env: pytest.MonkeyPatch, ames_manifest: Manifest
) -> None:
    names = ames_manifest.input.names()
    rows = [dict.fromkeys(names, True) for _ in range(300)]
    body = problem(client("predict").post("/", json={"instances": rows}), 400)
    assert body["errors_omitted"] + len(body["errors"]) == 300 * len(names)
    assert len(body["errors"]) == 50

    limit(env, "MAX_FIELD_ERRORS", 10_000)  # list them all: rows past each chunk keep their index
    rows = [{**EXAMPLE, "area": "big"} for _ in range(300)]
    body = problem(client("predict").post("/", json={"instances": rows}), 400)
    assert [e["field"] for e in body["errors"]] == [f"instances[{i}].area" for i in range(300)]
    assert "errors_omitted" not in body


def test_unknown_keys_and_bad_values_in_one_row_are_both_reported(env: pytest.MonkeyPatch) -> None:
    row = {**EXAMPLE, "area": "big", "Pool": 1}
    body = problem(client("predict").post("/", json={"instances": [row]}), 400)
    assert {e["field"] for e in body["errors"]} == {"instances[0].area", "instances[0].Pool"}


def test_unknown_top_level_keys_are_capped_too(env: pytest.MonkeyPatch) -> None:
    body = {"instances": [EXAMPLE], **{f"k{i}": 0 for i in range(5_000)}}
    answer = problem(client("explain").post("/", json=body), 400)
    assert len(answer["errors"]) == 50
    assert answer["errors_omitted"] == 4_950
    assert answer["errors"][0]["field"] == "k0"


def test_a_huge_unknown_key_is_shortened_in_the_error(env: pytest.MonkeyPatch) -> None:
    answer = problem(client("predict").post("/", json={"instances": [{"k" * 100_000: 1}]}), 400)
    (error,) = answer["errors"]
    assert error["field"] == "instances[0]." + "k" * 80 + "…"


def test_non_object_instances_are_named_each(env: pytest.MonkeyPatch) -> None:
    answer = problem(client("predict").post("/", json={"instances": [EXAMPLE, 1, "x"]}), 400)
    assert [e["field"] for e in answer["errors"]] == ["instances[1]", "instances[2]"]


# -- JSON value budget, instance and answer limits -------------------------------------------


def test_a_body_with_too_many_json_values_is_refused_before_parsing(
    env: pytest.MonkeyPatch,
) -> None:
    limit(env, "MAX_JSON_VALUES", 1_000)
    body = {"instances": [{"area": [{}] * 2_000}]}
    answer = problem(client("predict").post("/", json=body), 413)
    assert "the limit is 1000" in answer["detail"]
    fine = client("predict").post("/", json={"instances": [{"area": 1800}] * 100})
    assert fine.status_code == 200


def test_explain_has_its_own_instance_limit(env: pytest.MonkeyPatch) -> None:
    limit(env, "EXPLAIN_MAX_INSTANCES", 3)
    rows = [{"area": 1500 + i} for i in range(4)]
    answer = problem(client("explain").post("/", json={"instances": rows}), 413)
    assert "4 instances in one explain request; the limit is 3" in answer["detail"]
    assert client("explain").post("/", json={"instances": rows[:3]}).status_code == 200
    assert client("predict").post("/", json={"instances": rows}).status_code == 200


def test_an_answer_above_the_response_limit_is_a_413_saying_so(env: pytest.MonkeyPatch) -> None:
    limit(env, "MAX_RESPONSE_BYTES", 1024)  # one explanation is ~18 kB
    answer = problem(client("explain").post("/", json={"instances": [EXAMPLE]}), 413)
    assert "the limit is 1024" in answer["detail"]
    assert client("predict").post("/", json={"instances": [EXAMPLE]}).status_code == 200


# -- warnings: per prediction for small requests, one summary for batches --------------------


def test_batches_get_one_warning_summary_that_counts_what_rows_would_say(
    env: pytest.MonkeyPatch,
) -> None:
    rows = [
        {"area": 1800},
        {"area": 90_000, "Neighborhood": "Atlantis"},
        {"area": 1500, "Neighborhood": "CollgCr"},
    ]
    small = client("predict").post("/", json={"instances": rows}).get_json()
    assert "warning_summary" not in small
    per_row: dict[tuple[str, str], list[int]] = {}
    for i, pred in enumerate(small["predictions"]):
        for w in pred["warnings"]:
            per_row.setdefault((w["field"], w["code"]), []).append(i)

    limit(env, "ROW_WARNINGS_MAX_INSTANCES", 2)
    limit(env, "WARNING_ROWS_LISTED", 2)
    big = client("predict").post("/", json={"instances": rows}).get_json()
    assert all("warnings" not in p for p in big["predictions"])
    assert [p["price"] for p in big["predictions"]] == [p["price"] for p in small["predictions"]]
    summary = {(s["field"], s["code"]): s for s in big["warning_summary"]}
    assert set(summary) == set(per_row)
    for key, indices in per_row.items():
        assert summary[key]["count"] == len(indices)
        assert summary[key]["rows"] == indices[:2]
    assert summary[("Lot.Area", "imputed")] | {"message": ""} == {
        "field": "Lot.Area",
        "code": "imputed",
        "message": "",
        "count": 3,
        "rows": [0, 1],
    }
    assert "training range" in summary[("area", "out_of_range")]["message"]
    assert summary[("Neighborhood", "unknown_category")]["rows"] == [1]


def test_5000_sparse_rows_answer_a_small_body(env: pytest.MonkeyPatch) -> None:
    answer = client("predict").post("/", json={"instances": [{"area": 1800}] * 5_000})
    assert answer.status_code == 200
    assert len(answer.get_data()) < 1_000_000  # was 38 MB: one warning per missing cell
    body = answer.get_json()
    assert {s["count"] for s in body["warning_summary"]} == {5_000}


# -- every number finite, or a 422 naming the inputs ------------------------------------------


def test_require_finite_names_where_and_the_inputs_and_calls_lazy_inputs() -> None:
    from estate.contract.errors import CannotEstimateError, FieldError
    from estate.runtime.finite import out_of_range
    from estate.serving.problems import problem_for

    calls: list[int] = []

    def inputs() -> list[FieldError]:
        calls.append(1)
        warnings = [
            {"field": "area", "code": "out_of_range", "message": "1e+300 is outside"},
            {"field": "Lot.Area", "code": "imputed", "message": "missing"},
        ]
        return out_of_range(warnings, "instances[3]")

    require_finite({"price": 1.0, "interval": {"upper": 2.5}}, "predictions[3]", inputs)
    assert calls == []  # finite: the inputs are never computed
    with pytest.raises(CannotEstimateError) as caught:
        require_finite({"price": 1.0, "interval": {"upper": math.inf}}, "predictions[3]", inputs)
    assert problem_for(caught.value).status == 422
    assert caught.value.detail.startswith("predictions[3].interval.upper is not a finite number")
    assert [e.field for e in caught.value.errors] == ["instances[3].area"]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_number_that_reaches_the_encoder_is_a_422_not_a_500(value: float) -> None:
    app = flask.Flask("t")
    with app.test_request_context("/", method="POST"):
        answer = handle(
            flask.request, on_get=dict, on_post=lambda _r: {"price": value}, settings=HttpSettings()
        )
    assert answer.status_code == 422
    assert answer.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {"price": 1.5e-7, "big": 10**30, "rows": [1, None, True, -0.0], "t": (1, 2)},
        {"note": "NaN and Infinity are words here", "NaN": "-Infinity"},  # the slow encoder
        {"name": "caf\u00e9 \U0001f600", "quote": '"\\/\n'},
        {"lone": "a\ud800"},  # not UTF-8: the slow encoder escapes it
        {"nested": [{"price": [math.inf]}]},
    ],
)
def test_answers_are_json_that_reads_back_as_the_body_or_a_422(body: dict[str, Any]) -> None:
    """Whichever encoder writes the answer, it is UTF-8 JSON that reads back as the body,
    with no NaN or Infinity in it: a non-finite number anywhere is a 422."""
    app = flask.Flask("t")
    with app.test_request_context("/", method="POST"):
        answer = handle(
            flask.request, on_get=dict, on_post=lambda _r: body, settings=HttpSettings()
        )
    if "nested" in body:
        assert answer.status_code == 422
        return
    assert answer.status_code == 200
    assert json.loads(answer.get_data().decode("utf-8")) == json.loads(json.dumps(body))


def test_extreme_batch_rows_are_a_422_naming_the_row(env: pytest.MonkeyPatch) -> None:
    limit(env, "ROW_WARNINGS_MAX_INSTANCES", 0)  # summary form: warnings built only on failure
    # A linear term of a plain (not log1p) feature overflows; log1p'd areas saturate at
    # log1p(float32 max) and still give a finite (absurd, out_of_range-warned) price.
    rows = [{"area": 1800}] * 3 + [{"area": 1e300, "Overall.Qual": 1e300}]
    answer = problem(client("predict").post("/", json={"instances": rows}), 422)
    assert {e["field"] for e in answer["errors"]} <= {
        "instances[3].area",
        "instances[3].Overall.Qual",
    }
    assert answer["errors"]
    assert answer["detail"].startswith("predictions[3].price is not a finite number")


# -- request bodies (the real-socket cases are in tests/integration/test_body_limits.py) ------


def test_a_body_shorter_than_its_content_length_is_a_400() -> None:
    app = flask.Flask("t")
    environ = {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "100"}
    with app.test_request_context("/", method="POST", data=b'{"a": 1}', environ_base=environ):
        flask.request.environ["CONTENT_LENGTH"] = "100"
        with pytest.raises(Exception) as caught:
            read_json_body(flask.request, 1_000, HttpSettings())
    assert getattr(caught.value, "status", None) == 400
    assert "announced" in str(caught.value)


# -- header values of any length and charset ---------------------------------------------------

LONG = "9" * 10_000


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/" + LONG + ";o=1"},
        {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/" + "9" * 40},
        {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/0"},
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01" + LONG},
        {"X-Request-Id": LONG + "é\x00\x7f"},
        {"Origin": "http://" + LONG},
        {"Content-Type": "application/json; charset=" + LONG},
    ],
)
def test_header_values_never_fail_an_answer(
    env: pytest.MonkeyPatch, headers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    answer = client("predict").post("/", data=json.dumps({"instances": [EXAMPLE]}), headers={
        "Content-Type": "application/json", **headers
    })  # fmt: skip
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert "Access-Control-Allow-Origin" not in answer.headers
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "logging.googleapis.com/spanId" not in line or len(line[
        "logging.googleapis.com/spanId"
    ]) == 16  # fmt: skip


def test_a_long_version_pin_is_a_404_with_a_short_message(env: pytest.MonkeyPatch) -> None:
    answer = client("predict").post(
        "/", json={"instances": [EXAMPLE]}, headers={"X-Model-Version": "v" * 10_000}
    )
    body = problem(answer, 404)
    assert len(body["detail"]) < 400


# -- large requests take turns -----------------------------------------------------------------


def test_large_bodies_take_turns_and_small_ones_never_wait(env: pytest.MonkeyPatch) -> None:
    from estate.serving.bodies import large_bodies as _large_bodies

    limit(env, "LARGE_BODY_BYTES", 200)
    limit(env, "LARGE_BODY_SLOTS", 1)
    limit(env, "BODY_READ_SECONDS", 0.2)
    api = client("predict")
    large = {"instances": [{"area": 1500 + i} for i in range(30)]}
    small = {"instances": [{"area": 1500}]}
    assert api.post("/", json=large).status_code == 200  # its turn ends with its answer
    assert api.post("/", json=large).status_code == 200
    semaphore = _large_bodies._semaphore(1)
    assert semaphore.acquire(timeout=1)  # another large request is being answered
    try:
        answer = api.post("/", json=large)
        assert "already answering 1 requests over 200 bytes" in problem(answer, 503)["detail"]
        assert answer.headers["Retry-After"] == "1"
        assert api.post("/", json=small).status_code == 200
    finally:
        semaphore.release()
    assert api.post("/", json=large).status_code == 200
