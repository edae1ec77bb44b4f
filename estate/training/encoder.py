"""Preprocessing that every candidate shares, with an exact ONNX twin.

`TabularEncoder` fits the features: the training median of each numeric column and
whether to apply log(1 + max(x, 0)) to it (skewed non-negative columns), and the
categories of each categorical column. Encoding them is `estate.runtime.layout`'s rule
(`EncodedLayout`), the same one `estate.export.onnx_graph` writes as a handful of ONNX
nodes fed by two packed inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from estate.contract.bundle import (
    MISSING_CATEGORY,
    CategoricalFeature,
    DerivedFeature,
    InputSchema,
    NumericFeature,
    normalize_category,
)
from estate.contract.errors import ConfigError
from estate.runtime.formula import parse
from estate.runtime.layout import EncodedLayout
from estate.runtime.packing import CategoryColumn, PackingRule, pack_table
from estate.training.config import toml_key

_QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


@dataclass
class TabularEncoder:
    """Fit on a DataFrame of raw features; transform to a float32 design matrix."""

    categorical: Sequence[str] = ()
    log1p: Sequence[str] | str = "auto"
    skew_threshold: float = 0.75
    ordinal: Mapping[str, Sequence[str]] = field(default_factory=dict)  # column → levels
    derived: Mapping[str, str] = field(default_factory=dict)  # name → formula
    numeric_features: list[NumericFeature] = field(default_factory=list, init=False)
    categorical_features: list[CategoricalFeature] = field(default_factory=list, init=False)
    derived_features: list[DerivedFeature] = field(default_factory=list, init=False)

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> TabularEncoder:
        if frame.shape[1] == 0:
            raise ConfigError("No feature columns are left to train on; check drop_columns.")
        forced = set(self.categorical) | set(self.ordinal)
        unknown = forced - set(frame.columns)
        if unknown:
            raise ConfigError(
                f"Config names categorical columns not in the data: {sorted(unknown)}"
            )
        self.numeric_features = []
        self.categorical_features = []
        for name in frame.columns:
            column = frame[name]
            if name in forced or not pd.api.types.is_numeric_dtype(column):
                feature = _fit_categorical(str(name), column)
                if name in self.ordinal:
                    feature = _as_ordinal(feature, list(self.ordinal[str(name)]))
                self.categorical_features.append(feature)
            else:
                self.numeric_features.append(self._fit_numeric(str(name), column))
        self.derived_features = []
        if self.derived:
            self._fit_derived(frame)
        return self

    def _fit_derived(self, frame: pd.DataFrame) -> None:
        """Each derived feature's statistics, on its values as the graph computes them."""
        base = EncodedLayout(self.numeric_features, self.categorical_features)
        block = base.numbers(*self.pack(frame))
        readable = {n: block[:, i] for i, n in enumerate(base.names[: base.number_width])}
        clash = sorted(set(self.derived) & set(frame.columns))
        if clash:
            raise ConfigError(
                f"derived features {clash} have the names of data columns; rename them."
            )
        for name, text in self.derived.items():
            formula = parse(text)
            absent = [n for n in formula.inputs if n not in readable]
            if absent:
                raise ConfigError(
                    f"derived.{toml_key(name)} = {text!r} reads {absent}, which are not numeric or "
                    f"ordinal feature columns of the data; readable: {sorted(readable)}"
                )
            values = np.broadcast_to(formula.evaluate(readable), (len(frame),))
            stats = self._fit_numeric(name, pd.Series(values), what="Derived feature")
            fields = stats.model_dump(exclude={"kind"})
            fields |= {"formula": text, "inputs": list(formula.inputs)}
            self.derived_features.append(DerivedFeature.model_validate(fields))

    def _fit_numeric(
        self, name: str, column: pd.Series, what: str = "Numeric column"
    ) -> NumericFeature:
        values = column.astype("float64").to_numpy()
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ConfigError(f"{what} {name!r} has no finite value; drop it in the config.")
        if isinstance(self.log1p, str):
            skew = _skew(finite)
            use_log = (
                self.log1p == "auto"
                and finite.min() >= 0
                and np.unique(finite).size > 10
                and skew > self.skew_threshold
            )
        else:
            use_log = name in self.log1p
        quantiles = np.quantile(finite, list(_QUANTILES.values()))
        return NumericFeature(
            name=name,
            integer=bool(np.all(finite == np.round(finite))),
            impute=float(np.median(finite)),
            min=float(finite.min()),
            max=float(finite.max()),
            mean=float(finite.mean()),
            quantiles={k: float(q) for k, q in zip(_QUANTILES, quantiles, strict=True)},
            missing_rate=float(1 - finite.size / max(values.size, 1)),
            log1p=bool(use_log),
        )

    # -- transforming ----------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """The raw input columns (derived features are computed, not read)."""
        return [f.name for f in self.numeric_features] + [f.name for f in self.categorical_features]

    @property
    def layout(self) -> EncodedLayout:
        """The encoded columns of the fitted features (`estate.runtime.layout`)."""
        return EncodedLayout(
            self.numeric_features, self.categorical_features, self.derived_features
        )

    @property
    def encoded_names(self) -> list[str]:
        """Design-matrix column names: numeric names, then ``feature=category``."""
        return self.layout.names

    def pack(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The two ONNX inputs: float64 numeric block (NaN = missing), string block, by the
        one packing rule (`estate.runtime.packing`) serving and batch scoring use."""
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise ConfigError(f"Data lacks feature columns the encoder was fitted on: {missing}")
        numeric = np.empty((len(frame), len(self.numeric_features)), dtype=np.float64)
        for j, feat in enumerate(self.numeric_features):
            numeric[:, j] = pd.to_numeric(frame[feat.name], errors="coerce").astype("float64")
        columns = [_category_column(frame[cat.name]) for cat in self.categorical_features]
        schema = InputSchema(numeric=self.numeric_features, categorical=self.categorical_features)
        return pack_table(PackingRule(schema), numeric, columns)

    def transform_packed(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The design matrix of packed inputs (the ONNX preprocessing's numpy reference)."""
        return self.layout.encode(numeric, categorical)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.transform_packed(*self.pack(frame))


def _category_column(column: pd.Series) -> CategoryColumn:
    """A column's distinct values (NaN, None and pd.NA as one null) and row codes."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    values = [*uniques.tolist(), None]
    return CategoryColumn(values, np.where(codes < 0, len(values) - 1, codes))


def _skew(values: np.ndarray) -> float:
    """Sample skewness (pandas' definition), 0 for fewer than three values."""
    if values.size < 3:
        return 0.0
    return float(pd.Series(values).skew())  # type: ignore[arg-type]


def _as_ordinal(feature: CategoricalFeature, levels: list[str]) -> CategoricalFeature:
    """`feature` encoded by its levels; refuses a training value the scale does not hold."""
    outside = sorted(set(feature.categories) - set(levels) - {MISSING_CATEGORY})
    if outside:
        raise ConfigError(
            f"ordinal.{toml_key(feature.name)}: the data holds {outside}, which its levels "
            f"{levels} do not name; add them to the scale (lowest first) or drop the "
            f"column from ordinal. (A missing value, {MISSING_CATEGORY!r}, is level 0.)"
        )
    return feature.model_copy(update={"ordinal": levels})


def _fit_categorical(name: str, column: pd.Series) -> CategoricalFeature:
    values = pd.Series([normalize_category(v) for v in column.tolist()], dtype=object)
    counts = values.value_counts()
    categories = sorted(str(c) for c in counts.index)
    total = float(len(values))
    return CategoricalFeature(
        name=name,
        categories=categories,
        frequencies={str(c): round(float(n) / total, 6) for c, n in counts.items()},
        impute=str(counts.index[0]),
        missing_rate=float((values == MISSING_CATEGORY).mean()),
    )
