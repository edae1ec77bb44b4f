"""The same rows give the same ONNX inputs, whichever way they arrive.

Each case is a few raw rows; each source turns them into the graph's two inputs the way
its own code path does: JSON dicts through predict's packing (`ServingModel.pack`), the
explain path (`explain_instances`), a DataFrame through training's `TabularEncoder.pack`,
a CSV file and a Parquet file (plain and dictionary-typed string columns) through
`estate score`'s reader and packer, and `repack` (the champion gate's re-packing of
holdout rows for a schema with more features). Every source must give exactly the
arrays predict gives (NaN == NaN), and the tiny Ames bundle's ONNX outputs must be
bit-identical. A case a source cannot express is skipped by name, with the reason.

`test_the_missing_category_rule` pins the rule itself (the bundle contract's docstring,
`estate.contract.bundle`): a null or blank category becomes ``"NA"`` when training saw
``"NA"``, else the training mode; an absent feature becomes the mode.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from estate.contract.bundle import InputSchema, Manifest
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore

WITH_NA = "Bsmt.Qual"  # training saw "NA" (no basement); the mode is "TA"
WITHOUT_NA = "Sale.Type"  # training never saw "NA"; the mode is "WD"
CODE = "MS.SubClass"  # dwelling-type codes that look numeric ("60")
NAME = "Neighborhood"
NUMBER = "Lot.Frontage"  # missing in ~17 % of the Ames rows
LOGGED = "area"  # log1p in the graph
YEAR = "Year.Built"
Packed2 = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Case:
    """Rows as changes to a complete, ordinary house; `drop` = keys/columns left out."""

    name: str
    changes: list[dict[str, Any]]
    drop: tuple[str, ...] = ()
    #: The same rows as JSON can send them, when JSON spells them differently.
    json_changes: list[dict[str, Any]] | None = None
    kinds: frozenset[str] = field(default_factory=frozenset)


CASES = [
    Case("known", [{}]),
    Case("padded", [{WITHOUT_NA: " WD ", WITH_NA: "  Gd", NAME: "CollgCr "}]),
    Case("blank", [{WITH_NA: "", WITHOUT_NA: "  "}], kinds=frozenset({"blank"})),
    Case("null", [{WITH_NA: None, WITHOUT_NA: None}], kinds=frozenset({"null"})),
    Case(
        "partly null",
        [{WITH_NA: None, WITHOUT_NA: "New"}, {WITH_NA: "Ex", WITHOUT_NA: None}, {}],
        kinds=frozenset({"null"}),
    ),
    Case("absent", [{}], drop=(WITH_NA, WITHOUT_NA, NUMBER), kinds=frozenset({"absent"})),
    Case("literal NA", [{WITH_NA: "NA", WITHOUT_NA: "NA"}]),
    Case("code 60", [{CODE: 60}], kinds=frozenset({"int"})),
    Case("code 60.0", [{CODE: 60.0}], kinds=frozenset({"float"})),
    Case("code '60'", [{CODE: "60"}]),
    Case("unknown", [{NAME: "Atlantis", WITHOUT_NA: "Barter"}]),
    Case("number null", [{NUMBER: None}], kinds=frozenset({"number null"})),
    Case(
        "number '60'",
        [{NUMBER: "60", LOGGED: "1500"}],
        json_changes=[{NUMBER: 60.0, LOGGED: 1500.0}],
        kinds=frozenset({"number text"}),
    ),
    Case("number 60", [{NUMBER: 60, YEAR: 1999}]),
    Case("out of range", [{LOGGED: 1e6, YEAR: 1000.0, NUMBER: 0.5}]),
]

#: (source, what a case needs) → why that source cannot express it.
CANNOT = {
    ("dicts", "number text"): "JSON numbers are typed: predict answers a string with a 400",
    ("explain", "number text"): "JSON numbers are typed: explain answers a string with a 400",
    ("pandas", "absent"): "training refuses a frame without a fitted column (ConfigError)",
    ("csv", "null"): "a CSV cell is never null apart from empty, which is the blank case",
}


@pytest.fixture(scope="module")
def model(ames_store: Path) -> ServingModel:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes, 1, bundle.explainer_bytes)


def house(manifest: Manifest) -> dict[str, Any]:
    """An ordinary house: every feature at its training median or mode."""
    row: dict[str, Any] = {f.name: f.impute for f in manifest.input.numeric}
    row.update({c.name: c.impute for c in manifest.input.categorical})
    row[WITH_NA], row[WITHOUT_NA], row[CODE] = "Gd", "COD", "120"
    return row


def rows_of(manifest: Manifest, case: Case, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for change in changes:
        row = house(manifest) | change
        out.append({k: v for k, v in row.items() if k not in case.drop})
    return out


def json_rows(manifest: Manifest, case: Case) -> list[dict[str, Any]]:
    return rows_of(manifest, case, case.json_changes or case.changes)


# -- the sources ------------------------------------------------------------------------------
def from_dicts(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    numeric, categorical, _ = model.pack(
        model.adapter.validate_python(json_rows(model.manifest, case))
    )
    return numeric, categorical


def from_explain(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    """The explain path's packed inputs, read back from its answer's feature values."""
    from estate.runtime.explanations import explain_instances

    answers = explain_instances(model, json_rows(model.manifest, case))
    schema = model.manifest.input
    numeric = np.empty((len(answers), len(schema.numeric)), dtype=np.float64)
    categorical = np.empty((len(answers), len(schema.categorical)), dtype=object)
    for i, answer in enumerate(answers):
        values = {c["feature"]: c for c in answer["contributions"]}
        for j, f in enumerate(schema.numeric):
            item = values[f.name]
            numeric[i, j] = np.nan if item.get("imputed") else item["value"]
        for j, c in enumerate(schema.categorical):
            categorical[i, j] = values[c.name]["value"]
    return numeric, categorical


def from_pandas(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    from estate.training.encoder import TabularEncoder

    encoder = TabularEncoder()
    encoder.numeric_features = list(model.manifest.input.numeric)
    encoder.categorical_features = list(model.manifest.input.categorical)
    frame = pd.DataFrame(rows_of(model.manifest, case, case.changes))
    return encoder.pack(frame)


def _score_inputs(model: ServingModel, path: Path) -> Packed2:
    from estate.batch.score import pack_batch, read_batches

    schema = model.manifest.input
    wanted: dict[str, pa.DataType] = {f.name: pa.float64() for f in schema.numeric}
    wanted.update({c.name: pa.string() for c in schema.categorical})
    parts = []
    with path.open("rb") as source:
        for batch in read_batches(source, str(path), wanted, chunk_rows=2):  # > 1 chunk
            parts.append(pack_batch(model.manifest, batch, str(path)))
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])


def from_csv(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    rows = rows_of(model.manifest, case, case.changes)
    path = tmp / "rows.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)  # None is written as an empty cell
    return _score_inputs(model, path)


def _parquet(model: ServingModel, case: Case, tmp: Path, dictionary: bool) -> Packed2:
    rows = rows_of(model.manifest, case, case.changes)
    numeric = {f.name for f in model.manifest.input.numeric}
    columns: dict[str, pa.Array] = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        if name in numeric and not any(isinstance(v, str) for v in values):
            column = pa.array(values, type=pa.float64())
        else:
            column = pa.array(values)  # int, double, string or all-null, as the values are
        if dictionary and pa.types.is_string(column.type):
            column = column.dictionary_encode()
        columns[name] = column
    path = tmp / "rows.parquet"
    pq.write_table(pa.table(columns), path)
    if dictionary:
        kinds = pq.read_table(path).schema
        assert any(pa.types.is_dictionary(f.type) for f in kinds)
    return _score_inputs(model, path)


def from_parquet(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    return _parquet(model, case, tmp, dictionary=False)


def from_parquet_dictionary(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    return _parquet(model, case, tmp, dictionary=True)


def from_repack(model: ServingModel, case: Case, tmp: Path) -> Packed2:
    """Rows packed by training for a schema without the dropped features, re-packed by the
    champion gate for the full schema (what `repack` is for: features one side lacks)."""
    from estate.training.encoder import TabularEncoder
    from estate.training.gates import repack

    full = model.manifest.input
    narrow = InputSchema(
        numeric=[f for f in full.numeric if f.name not in case.drop],
        categorical=[c for c in full.categorical if c.name not in case.drop],
    )
    encoder = TabularEncoder()
    encoder.numeric_features = list(narrow.numeric)
    encoder.categorical_features = list(narrow.categorical)
    numeric, categorical = encoder.pack(pd.DataFrame(rows_of(model.manifest, case, case.changes)))
    return repack(numeric, categorical, narrow, full)


SOURCES: dict[str, Callable[[ServingModel, Case, Path], Packed2]] = {
    "explain": from_explain,
    "pandas": from_pandas,
    "csv": from_csv,
    "parquet": from_parquet,
    "parquet-dictionary": from_parquet_dictionary,
    "repack": from_repack,
}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("source", list(SOURCES))
def test_every_source_packs_like_predict(
    model: ServingModel, source: str, case: Case, tmp_path: Path
) -> None:
    for kind in case.kinds:
        if (source, kind) in CANNOT:
            pytest.skip(f"{source} cannot express {case.name!r}: {CANNOT[source, kind]}")
    if source == "repack" and not case.drop:
        pytest.skip("repack only fills features the packed rows lack (case 'absent')")
    expected = from_dicts(model, case, tmp_path)
    got = SOURCES[source](model, case, tmp_path)

    np.testing.assert_array_equal(got[0], expected[0])  # NaN == NaN
    assert got[1].dtype == object
    assert got[1].tolist() == expected[1].tolist()
    outputs, reference = model.run(*got), model.run(*expected)
    for out, ref in zip(outputs, reference, strict=True):
        np.testing.assert_array_equal(out, ref)  # bit-identical


def test_the_explain_path_predicts_what_predict_does(model: ServingModel) -> None:
    from estate.runtime.explanations import explain_instances

    rows = [
        r
        for case in CASES
        if not case.kinds & {"number text"}
        for r in json_rows(model.manifest, case)
    ]
    answers = explain_instances(model, rows)
    predictions = model.predict(model.adapter.validate_python(rows))
    assert [a["price"] for a in answers] == [p.value for p in predictions]


def packed_row(
    model: ServingModel, row: dict[str, Any]
) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """One row's packed values by feature name, and its (field, code) warnings."""
    numeric, categorical, warnings = model.pack(model.adapter.validate_python([row]))
    schema = model.manifest.input
    values: dict[str, Any] = {f.name: numeric[0, j] for j, f in enumerate(schema.numeric)}
    values.update({c.name: categorical[0, j] for j, c in enumerate(schema.categorical)})
    return values, {(w["field"], w["code"]) for w in warnings[0]}


def test_the_missing_category_rule(model: ServingModel) -> None:
    """null / blank → "NA" if training saw "NA", else the mode; absent → the mode;
    "NA" training never saw is missing too; every filled cell is warned "imputed"."""
    m = model.manifest
    modes = {c.name: c.impute for c in m.input.categorical}
    assert (modes[WITH_NA], modes[WITHOUT_NA]) == ("TA", "WD")
    base = house(m)

    for missing in (None, "", "   "):
        values, warned = packed_row(model, base | {WITH_NA: missing, WITHOUT_NA: missing})
        assert (values[WITH_NA], values[WITHOUT_NA]) == ("NA", "WD"), repr(missing)
        assert warned == {(WITH_NA, "imputed"), (WITHOUT_NA, "imputed")}, repr(missing)

    absent = {k: v for k, v in base.items() if k not in (WITH_NA, WITHOUT_NA)}
    values, warned = packed_row(model, absent)
    assert (values[WITH_NA], values[WITHOUT_NA]) == ("TA", "WD")
    assert warned == {(WITH_NA, "imputed"), (WITHOUT_NA, "imputed")}

    values, warned = packed_row(model, base | {WITH_NA: "NA", WITHOUT_NA: "NA"})
    assert (values[WITH_NA], values[WITHOUT_NA]) == ("NA", "WD")
    assert warned == {(WITHOUT_NA, "imputed")}  # a known "NA" is a value, not a gap

    for code in (60, 60.0, "60", " 60 ", "60.0"):
        values, warned = packed_row(model, base | {CODE: code})
        assert (values[CODE], warned) == ("60", set()), repr(code)

    values, warned = packed_row(model, base | {NAME: "Atlantis", NUMBER: None, YEAR: 1000.0})
    assert values[NAME] == "Atlantis"
    assert np.isnan(values[NUMBER])
    assert warned == {(NAME, "unknown_category"), (NUMBER, "imputed"), (YEAR, "out_of_range")}


def test_imputation_notes_name_the_value_used(model: ServingModel) -> None:
    base = house(model.manifest)
    row = {k: v for k, v in base.items() if k != WITHOUT_NA} | {WITH_NA: None}
    _, _, warnings = model.pack(model.adapter.validate_python([row]))
    notes = {w["field"]: w["message"] for w in warnings[0]}
    assert "'NA'" in notes[WITH_NA]
    assert "most common value 'WD'" in notes[WITHOUT_NA]
