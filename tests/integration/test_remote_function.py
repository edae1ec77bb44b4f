"""BigQuery remote-function protocol on predict, over real HTTP (functions-framework).

Bodies are shaped as BigQuery sends them (requestId, caller, sessionUser,
userDefinedContext, calls: one argument list per row); each row is what ``TO_JSON(t)``
gives for a row of the Ames table loaded into BigQuery: every column, numbers as JSON
numbers, NULL as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pytest
import requests
from http_server import serve

from estate.contract.bundle import Manifest
from estate.serving.remote import RETRIED

REPO = Path(__file__).resolve().parents[2]
AMES = REPO / "data" / "ames.csv.gz"
LIMIT = 1500  # ESTATE_MAX_INSTANCES of the server under test (BigQuery's batch cap)


def bigquery_body(rows: list[Any], context: dict[str, str] | None = None) -> dict[str, Any]:
    """A request as BigQuery sends it: one call (argument list) per row."""
    return {
        "requestId": "124ab1c",
        "caller": "//bigquery.googleapis.com/projects/myproject/jobs/myproject:US.bquxjob_5b4c112c",
        "sessionUser": "test-user@test-company.com",
        "userDefinedContext": context or {},
        "calls": [[row] for row in rows],
    }


@pytest.fixture(scope="module")
def table_rows() -> list[dict[str, Any]]:
    """TO_JSON(t) of the first 1,000 Ames rows: every column, NULL as null."""
    rows: list[dict[str, Any]] = pacsv.read_csv(AMES).slice(0, 1000).to_pylist()
    return rows


@pytest.fixture(scope="module")
def server(ames_store: Path) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESTATE_MAX_INSTANCES", str(LIMIT))
        with serve(ames_store, "ames") as url:
            yield url


def features(row: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    """The same row as a predict instance: only the model's features."""
    return {k: v for k, v in row.items() if k in set(manifest.input.names())}


def post(url: str, body: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=60)


def test_a_batch_of_1000_table_rows_gets_predicts_answers_in_order(
    server: str, table_rows: list[dict[str, Any]], ames_manifest: Manifest
) -> None:
    answer = post(server, bigquery_body(table_rows))
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["Content-Type"].startswith("application/json")
    replies = answer.json()["replies"]
    assert len(replies) == len(table_rows)
    # The same rows through predict's own envelope: identical prices, intervals, warnings.
    instances = [features(r, ames_manifest) for r in table_rows]
    predicted = []  # in requests of 100: larger ones answer a warning summary instead
    for start in range(0, len(instances), 100):
        chunk = {"instances": instances[start : start + 100]}
        predicted += post(server, chunk).json()["predictions"]
    for i, (reply, pred) in enumerate(zip(replies, predicted, strict=True)):
        assert reply["price"] == pred["price"], i
        assert reply["interval"] == pred["interval"], i
        assert reply["version"] == ames_manifest.version
        # predict's warnings; imputed ones without their (per-feature constant) message
        assert [(w["field"], w["code"]) for w in reply["warnings"]] == [
            (w["field"], w["code"]) for w in pred["warnings"]
        ], i
    # Rows with NULL cells are imputed and say so, as in predict's answer.
    sparse = [i for i, r in enumerate(table_rows) if any(v is None for v in r.values())]
    assert sparse, "the slice should hold rows with NULL cells"
    for i in sparse[:20]:
        assert {w["code"] for w in replies[i]["warnings"]} >= {"imputed"}


def test_1000_rows_with_one_feature_each_fit_in_one_answer(
    server: str, ames_manifest: Manifest
) -> None:
    """The largest warnings a batch can hold: every other feature imputed, in every row."""
    answer = post(server, bigquery_body([{"area": 1000 + i} for i in range(1000)]))
    assert answer.status_code == 200, answer.text[:300]
    replies = answer.json()["replies"]
    missing = len(ames_manifest.input.names()) - 1
    assert all(len(r["warnings"]) == missing for r in replies)
    assert all(r["price"] > 0 for r in replies)


def test_each_invalid_row_gets_its_error_in_its_own_reply(
    server: str, table_rows: list[dict[str, Any]]
) -> None:
    good = table_rows[0]
    rows: list[Any] = [
        good,
        None,  # SQL NULL argument
        json.dumps(good),  # TO_JSON_STRING(t): a STRING argument holding the row
        [1, 2],  # a JSON array, not an object
        {**good, "area": "big"},  # a number column holding text
        {"area": None, "Neighborhood": None},  # nothing to predict from
        {**good, "area": 1e308},  # finite, far outside the data: may overflow
        "not json",
        good,
        "[" * 100_000,  # a STRING argument nested past the parser's depth
    ]
    answer = post(server, bigquery_body(rows))
    assert answer.status_code == 200, answer.text[:500]
    replies = answer.json()["replies"]
    assert len(replies) == len(rows)
    assert replies[0]["price"] > 0
    assert "error" not in replies[0]
    assert replies[2]["price"] == replies[0]["price"] == replies[8]["price"]
    for i in (1, 3, 4, 5, 7, 9):
        assert "price" not in replies[i], (i, replies[i])
        assert replies[i]["error"]["detail"], (i, replies[i])
    assert "NULL" in replies[1]["error"]["detail"]
    assert "list" in replies[3]["error"]["detail"]
    fields = {e["field"] for e in replies[4]["error"]["errors"]}
    assert fields == {"calls[4][0].area"}
    assert "no feature values" in replies[5]["error"]["detail"]
    assert "not JSON" in replies[7]["error"]["detail"]
    assert "nested too deeply" in replies[9]["error"]["detail"]
    # An extreme row is either extrapolated with a warning or refused by name.
    extreme = replies[6]
    if "error" in extreme:
        assert any(e["field"] == "calls[6][0].area" for e in extreme["error"]["errors"])
    else:
        assert "out_of_range" in {w["code"] for w in extreme["warnings"]}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"calls": {"a": 1}}, 400, "list of argument lists"),
        ({"calls": [[{"area": 1000}, 2]]}, 400, "exactly one"),
        ({"calls": [{"area": 1000}]}, 400, "exactly one"),
        ({"calls": [[{"area": 1000}]], "extra": 1}, 400, "Unknown top-level"),
        ({"calls": [[{"area": 1000}]], "userDefinedContext": "v1"}, 400, "userDefinedContext"),
        (
            {"calls": [[{"area": 1000}]], "userDefinedContext": {"model_version": "nope"}},
            404,
            "userDefinedContext.model_version: 'nope' is not served",
        ),
        ({"calls": [[{"area": 1000}]] * (LIMIT + 1)}, 413, "max_batching_rows"),
    ],
)
def test_a_malformed_batch_fails_the_query_with_an_error_message(
    server: str, body: dict[str, Any], status: int, says: str
) -> None:
    answer = post(server, {**bigquery_body([]), **body})
    assert answer.status_code == status, answer.text[:300]
    assert status not in RETRIED  # BigQuery would retry those: 408, 429, 500, 503, 504
    assert answer.headers["Content-Type"].startswith("application/json")
    assert set(answer.json()) == {"errorMessage"}
    assert says in answer.json()["errorMessage"]


def test_user_defined_context_pins_the_served_version(
    server: str, table_rows: list[dict[str, Any]], ames_manifest: Manifest
) -> None:
    pinned = {"model_version": ames_manifest.version}
    answer = post(server, bigquery_body(table_rows[:3], pinned))
    assert answer.status_code == 200
    assert [r["version"] for r in answer.json()["replies"]] == [ames_manifest.version] * 3


def test_an_empty_batch_answers_no_replies(server: str) -> None:
    answer = post(server, bigquery_body([]))
    assert answer.status_code == 200
    assert answer.json() == {"replies": []}


def test_no_model_yet_answers_503_which_bigquery_retries(tmp_path: Path) -> None:
    with serve(tmp_path, "ames") as url:
        answer = post(url, bigquery_body([{"area": 1000}]))
    assert answer.status_code == 503
    assert answer.headers.get("Retry-After")
