"""The columnar predict form, ``{"inputs": {feature: [v0, v1, ...]}}``: the same checks, the
same packing and bit-identical predictions as the rows ``{feature: inputs[feature][i]}``.

Checked against the row form on random Ames-like batches (in-process, through the real
function), and on every class of unusual cell: each must come back as the row form's
error, named ``inputs.<feature>[i]`` instead of ``instances[i].<feature>``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from estate.contract.errors import InvalidInputError
from estate.contract.instances import MAX_STRING
from estate.runtime.packing import Packed
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore
from tests.conftest import function_client
from tests.unit.serving.test_fast_path import assert_same, clean_rows, strict_pack


@pytest.fixture(scope="module")
def model(ames_store: Path) -> ServingModel:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes)


@pytest.fixture
def api(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_PREDLOG_SAMPLE", "0")
    return function_client("predict")


def columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as columns: every feature any row names, null where a row lacks it."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}


def rows_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """What a columnar body means: row i is ``{feature: columns[feature][i]}``."""
    size = len(next(iter(columns.values())))
    return [{name: values[i] for name, values in columns.items()} for i in range(size)]


def with_ints(model: ServingModel, rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Some categories sent as JSON integers where their text is one (``MS.SubClass: 20``)."""
    rng = random.Random(seed)
    for row in rows:
        for c in model.categorical:
            value = row.get(c.name)
            if isinstance(value, str) and value.strip().isdigit() and rng.random() < 0.7:
                row[c.name] = int(value)
    return rows


def tame(model: ServingModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Out-of-range numbers brought to just above the range (still warned about), so the
    blend's answers stay finite."""
    for row in rows:
        for f in model.numeric:
            value = row.get(f.name)
            if isinstance(value, float | int) and value > f.max:
                row[f.name] = f.max + 1
    return rows


@pytest.mark.parametrize("size", [1, 7, 300])
def test_clean_columns_pack_as_their_rows_do(model: ServingModel, size: int) -> None:
    columns = columns_of(with_ints(model, clean_rows(model, 10 + size, size), size))
    rows = rows_of(columns)
    fast = model._packer.pack_columns_if_clean(columns, len(rows), MAX_STRING)
    assert fast is not None
    assert_same(fast, strict_pack(model, rows))
    assert_same(model.pack_columns_checked(columns, 50), strict_pack(model, rows))


def test_integer_categories_take_the_row_fast_path_and_pack_the_same(model: ServingModel) -> None:
    rows = with_ints(model, clean_rows(model, 5, 200), 5)
    assert any(type(v) is int for r in rows for k, v in r.items() if k in model._packer._cat_names)
    fast = model._packer.pack_if_clean(rows, model._known, MAX_STRING)
    assert fast is not None
    assert_same(fast, strict_pack(model, rows))


def test_predictions_are_bit_identical_to_the_row_form(
    api: FlaskClient, model: ServingModel
) -> None:
    rows = rows_of(columns_of(tame(model, with_ints(model, clean_rows(model, 21, 250), 21))))
    by_rows = api.post("/", json={"instances": rows})
    by_columns = api.post("/", json={"inputs": columns_of(rows)})
    assert by_rows.status_code == by_columns.status_code == 200, by_columns.get_data(as_text=True)
    assert by_columns.get_json() == by_rows.get_json()  # values, intervals, warning summary
    assert by_columns.get_data() == by_rows.get_data()  # to the last bit of every float
    small = rows[:3]  # per-row warnings too
    assert (
        api.post("/", json={"inputs": columns_of(small)}).get_data()
        == api.post("/", json={"instances": small}).get_data()
    )


def _unusual(model: ServingModel) -> list[tuple[str, Any]]:
    num, cat = model.numeric[0].name, model.categorical[0].name
    return [
        (num, True),
        (num, "12"),
        (num, 10**400),
        (num, [1]),
        (num, {"a": 1}),
        (cat, 60.5),  # a float for a category: the validator writes its text
        (cat, 2**70),  # an integer too long for the fast path
        (cat, False),
        (cat, "x" * (MAX_STRING + 1)),
        (cat, "caf\u00e9"),
        (cat, "a\ud800"),
        (cat, {"a": 1}),
    ]


@pytest.mark.parametrize("index", range(12))
def test_any_unusual_cell_gets_the_row_forms_answer_named_by_column(
    model: ServingModel, index: int
) -> None:
    field, value = _unusual(model)[index]
    columns = columns_of(clean_rows(model, 3, 20))
    columns.setdefault(field, [None] * 20)[13] = value
    rows = rows_of(columns)
    assert model._packer.pack_columns_if_clean(columns, 20, MAX_STRING) is None
    try:
        expected: Packed | InvalidInputError = strict_pack(model, rows)
    except InvalidInputError as exc:
        expected = exc
    try:
        got: Packed | InvalidInputError = model.pack_columns_checked(columns, 50)
    except InvalidInputError as exc:
        got = exc
    if isinstance(expected, InvalidInputError):
        assert isinstance(got, InvalidInputError)
        assert [(e.message, e.type) for e in got.errors] == [
            (e.message, e.type) for e in expected.errors
        ]
        assert [e.field for e in got.errors] == [
            e.field.replace("instances[13].", "inputs.") + "[13]" for e in expected.errors
        ]
        assert f"inputs.{field}[13]" in {e.field for e in got.errors}
    else:
        assert isinstance(got, Packed)
        assert_same(got, expected)


def problem(api: FlaskClient, body: Any) -> tuple[int, dict[str, Any]]:
    answer = api.post("/", data=json.dumps(body), content_type="application/json")
    assert answer.content_type == "application/problem+json", answer.get_data(as_text=True)
    return answer.status_code, answer.get_json()


def fields(found: dict[str, Any]) -> list[str]:
    return [e["field"] for e in found.get("errors", [])]


def test_bad_columnar_envelopes_get_a_400_naming_each_field(
    api: FlaskClient, model: ServingModel
) -> None:
    num, cat = model.numeric[0].name, model.categorical[0].name
    status, found = problem(api, {"inputs": {num: [1, 2], cat: ["A"], "nope": [1, 2]}})
    assert status == 400
    assert set(fields(found)) == {"inputs.nope", f"inputs.{cat}"}
    assert "one value per row" in json.dumps(found)
    status, found = problem(api, {"inputs": {num: 5}})
    assert (status, fields(found)) == (400, [f"inputs.{num}"])
    status, found = problem(api, {"inputs": {}})
    assert (status, fields(found)) == (400, ["inputs"])
    status, found = problem(api, {"inputs": {num: []}})
    assert (status, fields(found)) == (400, ["inputs"])
    status, found = problem(api, {"inputs": {num: [1]}, "instances": [{num: 1}]})
    assert (status, fields(found)) == (400, ["inputs"])
    status, found = problem(api, {})
    assert (status, fields(found)) == (400, ["instances"])
    status, found = problem(api, {"inputs": [[1, 2]]})
    assert (status, fields(found)) == (400, ["inputs"])


def test_a_row_with_no_value_and_too_many_rows_are_refused(
    api: FlaskClient, model: ServingModel
) -> None:
    num, cat = model.numeric[0].name, model.categorical[0].name
    status, found = problem(api, {"inputs": {num: [1.0, None], cat: ["A", None]}})
    assert status == 400
    assert "Row 1 of inputs" in found["detail"]
    status, found = problem(api, {"inputs": {num: [1.0] * 5001}})
    assert status == 413
    assert "5001 instances" in found["detail"]
    status, found = problem(api, {"inputs": {num: [1.0, float("nan")]}})
    assert (status, fields(found)) == (400, [f"inputs.{num}[1]"])
