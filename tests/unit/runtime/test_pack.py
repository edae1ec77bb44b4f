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

from estate.runtime.packing import integral_text
from estate.runtime.serving_model import ServingModel, _note, _preview
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
