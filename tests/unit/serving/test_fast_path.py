"""The batch fast paths give the answers of the strict paths they skip.

`parse_json` trusts a plain parse only when counts prove no key was duplicated, and
`ServingModel.pack_checked` packs a batch without pydantic only when every cell is one
the validator passes unchanged. Both are checked here against the strict path on every
class of cell the validator treats specially: each such cell must send the batch back
to the validator, which names it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estate.contract.errors import InvalidInputError
from estate.contract.instances import MAX_STRING, require_values, validate_instances
from estate.runtime.packing import Packed
from estate.runtime.serving_model import ServingModel
from estate.serving.jsonbody import _no_duplicates, parse_json
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore


@pytest.fixture(scope="module")
def model(ames_store: Path) -> ServingModel:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    return ServingModel(bundle.manifest, bundle.model_bytes)


# -- parse_json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"instances": [{"a": 1, "a": 2}]}',
        '{"instances": [{"a": 1}, {"b": 1, "b": null}]}',
        '{"instances": [], "instances": [{"a": 1}]}',
        '{"columns": {"a": [1], "a": [2]}}',
        '{"columns": {"a": [1]}, "columns": {"b": [2]}}',
        '{"instances": [{"a": "x:y", "a": 2}]}',  # a colon in a string hides no duplicate
        '{"instances": [{"a": "{", "a": 2}]}',
        '{"instances": [{"a": {"b": 1, "b": 2}}]}',  # nested deeper than the fast shapes
        '{"instances": [[{"a": 1, "a": 2}]]}',
    ],
)
def test_a_duplicate_key_anywhere_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="duplicate key"):
        parse_json(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        '{"instances": [{"a": 1, "b": "x:y"}, {"c": "{}", "d": null}]}',
        '{"instances": [{"a": {"b": 1}}, 3, "s", null, [1, {"z": 2}]]}',
        '{"columns": {"a": [1, 2], "b": ["x", null]}, "other": {"k": {"j": 1}}}',
        '[{"a": 1}, {"a": 2}]',
        '"text"',
    ],
)
def test_bodies_without_duplicates_parse_as_the_strict_parser_does(text: str) -> None:
    assert parse_json(text.encode()) == json.loads(text, object_pairs_hook=_no_duplicates)


def python_parse(raw: bytes) -> Any:
    """What `parse_json` answered before it had a fast parser: Python's, strictly."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise InvalidInputError("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidInputError(f"The body is not valid JSON: {exc}.") from None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs": {"a": [1, 2.5, -0.0, 1e400, -1e400, NaN, Infinity, -Infinity, null]}}',
        b'{"a": 123456789012345678901234567890, "b": 1e-400, "c": 2.2250738585072011e-308}',
        b'{"a": "\\u00e9\\ud83d\\ude00 caf\xc3\xa9 \\" \\\\ \\/ \\n"}',
        b'{"a": "lone \\ud800 surrogate"}',  # the fast parser refuses it, Python's reads it
        b"[" * 250 + b"1" + b"]" * 250,  # deeper than the fast parser goes
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff",
        b'{"a": "\xc3"}',
        b"\xef\xbb\xbf[1]",
        b"",
        b"[1,]",
        b"[-NaN]",
        b"[inf]",
        b'{"a": nul}',
        b"[1] x",
        b'["\x01"]',
        b"[01]",
        b"[" + b"1" * 5000 + b"]",  # more digits than Python converts
    ],
)
def test_every_body_parses_or_is_refused_as_pythons_parser_did(raw: bytes) -> None:
    """The fast parser only ever speeds an answer up: the same values (to the last bit,
    NaN included), the same 400 and its message for every text it or Python refuses."""

    def answer(parse: Any) -> tuple[str, str]:
        try:
            return "parsed", repr(parse(raw))
        except InvalidInputError as exc:
            return "refused", exc.detail

    assert answer(parse_json) == answer(python_parse)


def test_numbers_parse_to_the_same_bits_as_pythons_parser() -> None:
    rng = random.Random(5)
    numbers = [
        repr(rng.uniform(-1e6, 1e6)),
        *(
            f"{rng.randint(0, 10**20)}.{rng.randint(0, 10**25)}e{rng.randint(-330, 310)}"
            for _ in range(3000)
        ),
        *(repr(rng.random() * 10.0 ** rng.randint(-300, 300)) for _ in range(3000)),
        *(str(rng.randint(-(10**30), 10**30)) for _ in range(500)),
    ]
    raw = ("[" + ",".join(numbers) + "]").encode()
    assert repr(parse_json(raw)) == repr(json.loads(raw))


# -- pack_checked ----------------------------------------------------------------------------


def strict_pack(model: ServingModel, rows: list[Any]) -> Packed:
    instances = validate_instances(model.adapter, rows, 50)
    require_values(instances)
    return model.pack_flags(instances)


def assert_same(a: Packed, b: Packed) -> None:
    np.testing.assert_array_equal(a.numeric, b.numeric)
    assert a.categorical.tolist() == b.categorical.tolist()
    for name in ("missing_numeric", "outside", "missing_category", "unknown"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def clean_rows(model: ServingModel, seed: int, size: int) -> list[dict[str, Any]]:
    """Random rows the validator passes unchanged: absent, null, out-of-range and JSON
    integer numbers; absent, null, blank, "NA", unknown and padded category texts."""
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        row: dict[str, Any] = {}
        for f in model.numeric:
            roll = rng.random()
            if roll < 0.2:
                continue
            row[f.name] = (
                None
                if roll < 0.3
                else f.max + rng.uniform(0.5, 1e6)
                if roll < 0.4
                else rng.randint(int(f.min), int(f.max))
                if roll < 0.6
                else rng.uniform(f.min, f.max)
            )
        for c in model.categorical:
            roll = rng.random()
            if roll < 0.2:
                continue
            row[c.name] = (
                None
                if roll < 0.3
                else rng.choice(["never-seen", "  ", "", "NA", "60.0"])
                if roll < 0.45
                else f"  {rng.choice(c.categories)} "
                if roll < 0.6
                else rng.choice(c.categories)
            )
        rows.append(row)
    return [r for r in rows if any(v is not None for v in r.values())]


@pytest.mark.parametrize("size", [1, 5, 400])
def test_clean_batches_take_the_fast_path_and_pack_the_same(model: ServingModel, size: int) -> None:
    rows = clean_rows(model, size, size) or [{model.numeric[0].name: 1.0}]
    fast = model._packer.pack_if_clean(rows, frozenset(model.feature_names), MAX_STRING)
    assert fast is not None
    assert_same(fast, strict_pack(model, rows))


def _bad_cells(model: ServingModel) -> list[tuple[str, Any]]:
    num, cat = model.numeric[0].name, model.categorical[0].name
    return [
        (num, True),  # bool is not a number
        (num, "12"),
        (num, float("nan")),
        (num, float("inf")),
        (num, 10**400),  # beyond float64
        (num, [1]),
        (cat, 60.0),  # a float for a category: the validator writes its text (an int is clean)
        (cat, "x" * (MAX_STRING + 1)),
        (cat, "caf\u00e9"),  # non-ASCII: the validator decides
        (cat, "a\ud800"),  # a lone surrogate: the validator refuses it
        (cat, {"a": 1}),
        ("no_such_feature", 1),
    ]


@pytest.mark.parametrize("index", range(12))
def test_any_unusual_cell_sends_the_batch_to_the_validator(model: ServingModel, index: int) -> None:
    field, value = _bad_cells(model)[index]
    rows: list[Any] = [*clean_rows(model, 3, 20), {**clean_rows(model, 4, 1)[0], field: value}]
    assert model._packer.pack_if_clean(rows, frozenset(model.feature_names), MAX_STRING) is None
    try:
        expected: Packed | InvalidInputError = strict_pack(model, rows)
    except InvalidInputError as exc:
        expected = exc
    try:
        got: Packed | InvalidInputError = model.pack_checked(rows, 50)
    except InvalidInputError as exc:
        got = exc
    if isinstance(expected, InvalidInputError):
        assert isinstance(got, InvalidInputError)
        assert (got.detail, got.errors) == (expected.detail, expected.errors)  # same fields
        assert any(f"instances[{len(rows) - 1}]" in e.field for e in got.errors)
    else:
        assert isinstance(got, Packed)
        assert_same(got, expected)


@pytest.mark.parametrize("rows", [[{}], [{"x": None}], [1], [None], ["row"]])
def test_empty_or_non_object_rows_are_named_by_the_validator(
    model: ServingModel, rows: list[Any]
) -> None:
    if rows == [{"x": None}]:
        rows = [{model.numeric[0].name: None, model.categorical[0].name: None}]
    assert model._packer.pack_if_clean(rows, frozenset(model.feature_names), MAX_STRING) is None
    with pytest.raises(InvalidInputError) as raised:
        model.pack_checked(rows, 50)
    named = [raised.value.detail, *(e.field for e in raised.value.errors)]
    assert any("instances[0]" in text for text in named)


def test_the_fast_path_knows_the_validators_fields(model: ServingModel) -> None:
    from estate.contract.instances import known_fields

    assert model._known == known_fields(model.adapter)


def test_a_batch_split_over_threads_gives_the_same_bits(ames_store: Path) -> None:
    bundle = read_bundle(LocalStore(ames_store), "ames")
    one = ServingModel(bundle.manifest, bundle.model_bytes)
    split = ServingModel(bundle.manifest, bundle.model_bytes, batch_threads=3)
    packed = one.pack_checked(clean_rows(one, 9, 700), 50)
    assert len(packed.numeric) >= 3 * 128  # big enough to run as three blocks
    for a, b in zip(
        one.run(packed.numeric, packed.categorical),
        split.run(packed.numeric, packed.categorical),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
