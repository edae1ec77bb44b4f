"""Vectorised `ServingModel.pack` against a per-cell loop, on random rows.

The reference below states the packing rule (`estate.runtime.packing`) one cell at a
time: the same arrays, the same warnings in the same order, for absent, null, blank,
"NA", out-of-range, unknown, numeric-looking and whitespace-padded values.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estate.runtime.input_warnings import _note, _preview
from estate.runtime.packing import integral_text
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore


@pytest.fixture(scope="module")
def model(ames_store: Path) -> ServingModel:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes)


def reference_pack(
    model: ServingModel, instances: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, str]]]]:
    """The packing rule, one cell at a time."""
    n = len(instances)
    numeric = np.full((n, len(model.numeric)), np.nan, dtype=np.float64)
    categorical = np.empty((n, len(model.categorical)), dtype=object)
    warnings: list[list[dict[str, str]]] = [[] for _ in range(n)]
    for i, row in enumerate(instances):
        notes = warnings[i]
        for j, feat in enumerate(model.numeric):
            value = row.get(feat.name)
            if value is None:
                message = f"missing; used the training median {feat.impute:g}"
                notes.append(_note(feat.name, "imputed", message))
                continue
            numeric[i, j] = value
            if value < feat.min or value > feat.max:
                notes.append(
                    _note(
                        feat.name,
                        "out_of_range",
                        f"{value:g} is outside the training range {feat.min:g}…{feat.max:g}; "
                        "the estimate is an extrapolation",
                    )
                )
        for j, cat in enumerate(model.categorical):
            known = set(cat.categories)
            if cat.name not in row:  # absent: the mode
                used, missing = cat.impute, True
            else:
                value = row[cat.name]
                text = "" if value is None else str(value).strip()
                if text and text not in known:
                    text = integral_text(text)
                missing = not text or (text == "NA" and "NA" not in known)
                used = ("NA" if "NA" in known else cat.impute) if missing else text
            categorical[i, j] = used
            if missing:
                if used == cat.impute:
                    message = f"missing; used the most common value {cat.impute!r}"
                else:
                    message = "missing; used 'NA', how training saw missing values"
                notes.append(_note(cat.name, "imputed", message))
            elif used not in known:
                notes.append(
                    _note(
                        cat.name,
                        "unknown_category",
                        f"{used!r} was not seen in training; it counts as none of the "
                        f"known values ({_preview(cat.categories)})",
                    )
                )
    return numeric, categorical, warnings


def random_instance(model: ServingModel, rng: random.Random) -> dict[str, Any]:
    """Mostly plausible rows with every kind of oddity mixed in, as JSON would bring them."""
    row: dict[str, Any] = {}
    for feat in model.numeric:
        roll = rng.random()
        if roll < 0.2:
            continue  # omitted
        if roll < 0.3:
            row[feat.name] = None  # explicit null
        elif roll < 0.4:
            row[feat.name] = feat.max + rng.uniform(0.5, 1e6)  # above range
        elif roll < 0.45:
            row[feat.name] = feat.min - rng.uniform(0.5, 1e6)  # below range
        elif roll < 0.6:
            row[feat.name] = rng.randint(int(feat.min), int(feat.max))  # JSON int
        else:
            row[feat.name] = rng.uniform(feat.min, feat.max)
    for cat in model.categorical:
        roll = rng.random()
        if roll < 0.2:
            continue
        if roll < 0.3:
            row[cat.name] = None
        elif roll < 0.4:
            row[cat.name] = rng.choice(["never-seen", "  ", "", "Zz9", "NA"])
        elif roll < 0.5:
            row[cat.name] = rng.choice([60, 20.0, 1.5, "60.0", " 20 "])  # numbers as text
        elif roll < 0.6:
            row[cat.name] = f"  {rng.choice(cat.categories)} "  # whitespace is stripped
        else:
            row[cat.name] = rng.choice(cat.categories)
    return row


@pytest.mark.parametrize("size", [1, 7, 300])
def test_vectorised_pack_matches_the_per_cell_loop(model: ServingModel, size: int) -> None:
    rng = random.Random(size)
    raw = [random_instance(model, rng) for _ in range(size)]
    instances = model.adapter.validate_python(raw)

    numeric, categorical, warnings = model.pack(instances)
    ref_numeric, ref_categorical, ref_warnings = reference_pack(model, instances)

    np.testing.assert_array_equal(numeric, ref_numeric)  # NaN == NaN here
    assert categorical.tolist() == ref_categorical.tolist()
    assert warnings == ref_warnings
    codes = {w["code"] for row in warnings for w in row}
    if size > 1:  # the random rows exercise every kind of warning
        assert codes == {"imputed", "out_of_range", "unknown_category"}


def test_pack_notes_are_independent_objects(model: ServingModel) -> None:
    """Imputation notes are copied per row, so editing one response never edits another."""
    _, _, warnings = model.pack([{}, {}])
    warnings[0][0]["message"] = "changed"
    assert warnings[1][0]["message"] != "changed"


def test_complete_and_partial_rows_mixed_match_the_loop(model: ServingModel) -> None:
    """Complete rows take the fast lookup; a row missing only a category, or everything,
    takes the fallback; mixing them keeps every row in its place."""
    rng = random.Random(7)
    complete = {f.name: rng.uniform(f.min, f.max) for f in model.numeric}
    complete.update({c.name: rng.choice(c.categories) for c in model.categorical})
    no_category = {k: v for k, v in complete.items() if k != model.categorical[-1].name}
    no_number = {k: v for k, v in complete.items() if k != model.numeric[0].name}
    raw = [complete, no_category, complete, {}, no_number, complete]
    instances = model.adapter.validate_python(raw)

    numeric, categorical, warnings = model.pack(instances)
    ref_numeric, ref_categorical, ref_warnings = reference_pack(model, instances)

    np.testing.assert_array_equal(numeric, ref_numeric)
    assert categorical.tolist() == ref_categorical.tolist()
    assert warnings == ref_warnings
    assert [len(w) for w in warnings[:3]] == [0, 1, 0]


# -- column by column: each kind of category column, alone or mixed ----------------------------

KINDS = [
    "known",
    "padded",
    "null",
    "null and known",
    "blank",
    "NA",
    "unknown",
    "integers",
    "integral texts",
    "absent",
    "partly absent",
    "mixed",
]


def category_column(kind: str, cat: Any, rng: random.Random, n: int) -> list[Any] | None:
    """`n` cells of one categorical feature, all of one kind (None: the feature is absent)."""
    known = list(cat.categories)

    def as_int(text: str) -> int | str:
        return int(text) if text.isdigit() else text

    if kind == "mixed":
        kind = rng.choice([k for k in KINDS if k not in ("mixed", "absent", "partly absent")])
    if kind == "absent":
        return None
    pick = {
        "known": lambda: rng.choice(known),
        "padded": lambda: rng.choice([f"  {rng.choice(known)} ", rng.choice(known)]),
        "null": lambda: None,
        "null and known": lambda: rng.choice([None, rng.choice(known)]),
        "blank": lambda: rng.choice(["", "   ", rng.choice(known)]),
        "NA": lambda: rng.choice(["NA", " NA", rng.choice(known)]),
        "unknown": lambda: rng.choice(["never-seen", "Zz9", rng.choice(known)]),
        "integers": lambda: rng.choice([60, 20, 7, as_int(rng.choice(known))]),
        "integral texts": lambda: rng.choice(["60.0", " 20.00 ", "1e1", rng.choice(known)]),
        "partly absent": lambda: rng.choice([rng.choice(known), None]),
    }[kind]
    return [pick() for _ in range(n)]


@pytest.mark.parametrize("n", [5, 60])  # a few rows as a block, more column by column
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_category_column_packs_as_the_per_cell_loop(
    model: ServingModel, kind: str, n: int
) -> None:
    """Rows, raw rows (`pack_if_clean`) and columns (`pack_columns_if_clean`) give the
    per-cell loop's arrays and warnings, whether a column is all known texts (taken as it
    is) or holds nulls, blanks, "NA", unknown texts, integers or absent cells."""
    from estate.contract.instances import MAX_STRING

    rng = random.Random(kind)
    rows: list[dict[str, Any]] = [
        {f.name: rng.uniform(f.min, f.max) for f in model.numeric} for _ in range(n)
    ]
    for cat in model.categorical:
        values = category_column(kind, cat, rng, n)
        for row, value in zip(rows, values or [], strict=False):
            if not (kind == "partly absent" and value is None):
                row[cat.name] = value  # "partly absent": a row without the key
    instances = model.adapter.validate_python(rows)
    ref_numeric, ref_categorical, ref_warnings = reference_pack(model, instances)
    sources = {
        "validated": model.pack_flags(instances),
        "raw rows": model._packer.pack_if_clean(rows, model._known, MAX_STRING),
    }
    if kind != "partly absent":  # a column cannot leave out some rows' cells
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        sources["columns"] = model._packer.pack_columns_if_clean(columns, n, MAX_STRING)
    for source, packed in sources.items():
        assert packed is not None, source
        np.testing.assert_array_equal(packed.numeric, ref_numeric)
        assert packed.categorical.tolist() == ref_categorical.tolist(), source
        assert [model.row_warnings(packed, i) for i in range(n)] == ref_warnings, source


def test_known_texts_the_plain_check_cannot_vouch_for_take_the_careful_path(
    model: ServingModel,
) -> None:
    """A column of known texts is taken as it is only when every known text is one a raw
    cell passes unchanged: not one that is padded, non-ASCII or longer than the validator
    allows (a schema written by another trainer could hold such texts)."""
    from estate.contract.instances import MAX_STRING
    from estate.runtime.dict_packing import DictPacker

    schema = model.manifest.input
    cat = schema.categorical[0]
    extra = [" Padded", "Caf\u00e9", "x" * (MAX_STRING + 1)]
    cat = cat.model_copy(update={"categories": [*cat.categories, *extra]})
    schema = schema.model_copy(update={"categorical": [cat, *schema.categorical[1:]]})
    packer = DictPacker(schema)
    assert packer.rule.plain_width[0] is None
    assert packer.rule.plain_width[1] is not None

    def pack(value: str) -> Any:
        return packer.pack_columns_if_clean({cat.name: [value] * 3}, 3, MAX_STRING)

    padded = pack(" Padded")  # stripped to a text training never saw, as the rule says
    assert padded is not None
    assert padded.categorical[:, 0].tolist() == ["Padded"] * 3
    assert padded.unknown[:, 0].all()
    assert pack("Caf\u00e9") is None  # non-ASCII: the validator decides
    assert pack("x" * (MAX_STRING + 1)) is None  # too long: the validator refuses it
    known = pack(cat.categories[0])
    assert known is not None
    assert not known.unknown.any()
    assert not known.missing_category[:, 0].any()


@pytest.mark.parametrize("rows", [3, 50])  # cell by cell, and column by column
def test_the_rule_on_a_block_matches_it_cell_by_cell(model: ServingModel, rows: int) -> None:
    """`PackingRule.categories` (a few rows cell by cell, more column by column with each
    distinct text once) against the rule applied to each cell, with absent cells and a
    subset of the features."""
    rule = model._packer.rule
    rng = random.Random(3)
    cols = [0, 3, 5, 7]
    texts = np.empty((rows, len(cols)), dtype=object)
    for at, j in enumerate(cols):
        texts[:, at] = [
            rng.choice([None, "", "NA", "never-seen", "60.0", *model.categorical[j].categories])
            for _ in range(rows)
        ]
    texts[0] = [None, "never-seen", "", "60.0"]
    absent = np.zeros(texts.shape, dtype=bool)
    absent[::2, 1] = True
    used, missing, unknown = rule.categories(texts, absent, columns=cols)
    for i in range(rows):
        for at, j in enumerate(cols):
            one, gone, strange = rule.cell(j, rule.mode[j] if absent[i, at] else texts[i, at])
            assert used[i, at] == one
            assert missing[i, at] == (gone or absent[i, at])
            assert unknown[i, at] == strange
    assert missing.any()
    assert unknown.any()
    assert not missing.all()
