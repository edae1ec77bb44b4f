"""The encoded column layout: names, offsets and the numpy reference of the encoding.

The ONNX graph is checked against `EncodedLayout.encode` in tests/unit/export; here the
rule itself, on a hand-built schema (no training).
"""

from __future__ import annotations

import numpy as np

from estate.contract.bundle import CategoricalFeature, InputSchema, NumericFeature
from estate.runtime.layout import EncodedLayout


def _num(name: str, impute: float, log1p: bool) -> NumericFeature:
    return NumericFeature(
        name=name, integer=False, impute=impute, min=0, max=10, mean=1, quantiles={},
        missing_rate=0, log1p=log1p,
    )  # fmt: skip


def _cat(name: str, categories: list[str]) -> CategoricalFeature:
    return CategoricalFeature(
        name=name, categories=categories, frequencies={}, impute=categories[0], missing_rate=0
    )


SCHEMA = InputSchema(
    numeric=[_num("area", 3.0, True), _num("rooms", 2.0, False)],
    categorical=[_cat("hood", ["A", "B"]), _cat("roof", ["NA", "flat", "gable"])],
)


def test_columns_are_numeric_then_one_per_category_in_order() -> None:
    layout = EncodedLayout.of(SCHEMA)
    assert layout.names == [
        "area", "rooms", "hood=A", "hood=B", "roof=NA", "roof=flat", "roof=gable",
    ]  # fmt: skip
    assert layout.width == 7
    assert layout.category_index == {
        (0, "A"): 2, (0, "B"): 3, (1, "NA"): 4, (1, "flat"): 5, (1, "gable"): 6,
    }  # fmt: skip
    assert layout.raw_names == ["area", "rooms", "hood", "roof"]
    assert layout.raw_of == [0, 1, 2, 2, 3, 3, 3]
    # Summing encoded columns back gives one column per raw feature.
    np.testing.assert_array_equal(layout.to_raw().sum(axis=0), [1, 1, 2, 3])
    np.testing.assert_array_equal(layout.to_raw().sum(axis=1), np.ones(7))


def test_encode_imputes_logs_casts_and_one_hots_unseen_as_zeros() -> None:
    layout = EncodedLayout.of(SCHEMA)
    numeric = np.array([[np.nan, np.nan], [-5.0, 7.5], [1e6, 0.0]])
    categorical = np.array([["A", "NA"], ["B", "gable"], ["unseen", "NA "]], dtype=object)
    Z = layout.encode(numeric, categorical)
    assert Z.dtype == np.float32
    expected = np.array(
        [
            [np.log(3.0 + 1.0), 2.0, 1, 0, 1, 0, 0],  # missing → the median, then log(1 + x)
            [0.0, 7.5, 0, 1, 0, 0, 1],  # log(1 + max(x, 0)): a negative area logs to 0
            [np.log(1e6 + 1.0), 0.0, 0, 0, 0, 0, 0],  # unseen (or unnormalised) → all zeros
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(Z, expected)


def test_a_schema_without_numeric_or_categorical_features_encodes_the_other_block() -> None:
    only_cat = EncodedLayout(numeric=[], categorical=SCHEMA.categorical)
    Z = only_cat.encode(np.empty((2, 0)), np.array([["B", "flat"], ["A", "x"]], dtype=object))
    np.testing.assert_array_equal(Z, [[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]])
    only_num = EncodedLayout(numeric=SCHEMA.numeric, categorical=[])
    Z = only_num.encode(np.array([[0.0, 1.0]]), np.empty((1, 0), dtype=object))
    np.testing.assert_array_equal(Z, [[0.0, 1.0]])


def test_the_number_block_computes_each_formula_as_the_formula_reference() -> None:
    """Derived columns are compiled once per layout; they must equal `Formula.evaluate`
    (the reference the ONNX graph is tested against) for every kind of node, and a
    result that is not finite becomes the feature's median."""
    from estate.contract.bundle import DerivedFeature
    from estate.runtime.formula import parse

    texts = [
        "area + rooms * 2",
        "-(area - rooms) / rooms",
        "rooms",
        "(1 + 2.5) * rooms",
        "area / (rooms - 2)",
    ]
    derived = [
        DerivedFeature(
            **_num(f"d{i}", 100.0 + i, False).model_dump(exclude={"name", "log1p", "kind"}),
            name=f"d{i}",
            log1p=False,
            formula=text,
            inputs=list(parse(text).inputs),
        )
        for i, text in enumerate(texts)
    ]
    layout = EncodedLayout(SCHEMA.numeric, SCHEMA.categorical, derived)
    numeric = np.array([[1.5, 4.0], [np.nan, 2.0], [-3.0, np.nan], [1e308, 0.5]])
    categorical = np.array([["A", "NA"]] * 4, dtype=object)
    block = layout.numbers(numeric, categorical)
    filled = np.where(np.isnan(numeric), [3.0, 2.0], numeric)
    columns = {"area": filled[:, 0], "rooms": filled[:, 1]}
    for i, text in enumerate(texts):
        with np.errstate(all="ignore"):
            want = np.broadcast_to(parse(text).evaluate(columns), (4,))
        want = np.where(np.isfinite(want), want, 100.0 + i)
        np.testing.assert_array_equal(block[:, 2 + i], want)
    assert block[1, 6] == 104.0  # rooms = 2 (its median): a zero denominator → the median
    one = layout.numbers(numeric[:1], categorical[:1])  # one row, as explain sends it
    np.testing.assert_array_equal(one, block[:1])
