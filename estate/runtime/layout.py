"""The encoded column layout: how the graph's two packed inputs become its feature matrix.

Numeric features are imputed with the training median; an ordinal categorical feature
(``CategoricalFeature.ordinal``) becomes one number, its level (`ordinal_levels`); a
derived feature (`DerivedFeature`) is its formula (`estate.runtime.formula`) over those
numbers, and a result that is not finite becomes its training median. Together they form
the number block, each column optionally log(1 + max(x, 0))-ed, then cast to float32.
Every other categorical feature becomes one one-hot column per training category (an
unseen category encodes as all zeros). The columns are, in order: the numeric features,
the ordinal features, the derived features, then ``feature=category`` per one-hot
feature. This module is the one statement of that rule: training fits it
(`estate.training.encoder`), export writes it as ONNX nodes (`estate.export.onnx_graph`)
and SHAP tables over its columns, and the runtime explainer re-encodes rows with
`EncodedLayout.encode`, the numpy reference the ONNX graph is tested against. Transforms
run in float64 and cast to float32 last, as the graph does, so tree splits see
bit-identical values on both sides.

Explanations are reported per *feature*: each raw input (numeric, categorical, ordinal)
and each derived feature; `to_raw` sums encoded columns back to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from estate.contract.bundle import (
    CategoricalFeature,
    DerivedFeature,
    InputSchema,
    NumericFeature,
    ordinal_levels,
)
from estate.runtime.formula import Formula, fold, parse


@dataclass(frozen=True)
class EncodedLayout:
    """The encoded columns of an input schema, and the numpy reference of the encoding."""

    numeric: Sequence[NumericFeature]
    categorical: Sequence[CategoricalFeature]
    derived: Sequence[DerivedFeature] = ()
    names: list[str] = field(init=False)
    impute: np.ndarray = field(init=False)  # float64 [numeric features]
    log1p: np.ndarray = field(init=False)  # bool [number block: numeric, ordinal, derived]
    category_index: dict[tuple[int, str], int] = field(init=False)  # one-hot features only
    ordinal: list[int] = field(init=False)  # categorical indices encoded as a level
    ordinal_map: list[dict[str, float]] = field(init=False)  # per ordinal feature
    ordinal_default: np.ndarray = field(init=False)  # float64: level of an unknown text
    formulas: list[Formula] = field(init=False)
    formula_columns: list[list[int]] = field(init=False)  # number-block column of each input
    derived_impute: np.ndarray = field(init=False)  # float64 [derived features]
    _formula_fns: list[_Column] = field(init=False, repr=False)  # each formula on the block
    _columns: list[dict[str, int]] = field(init=False, repr=False)  # per feature, in the block
    raw_of: list[int] = field(init=False)  # the reported feature each encoded column sums to

    def __post_init__(self) -> None:
        k, m = len(self.numeric), len(self.categorical)
        names = [f.name for f in self.numeric]
        raw_of = list(range(k))
        ordinal = [j for j, c in enumerate(self.categorical) if c.ordinal is not None]
        maps = [ordinal_levels(self.categorical[j]) for j in ordinal]
        for j in ordinal:
            names.append(self.categorical[j].name)
            raw_of.append(k + j)
        number_index = {n: i for i, n in enumerate(names)}  # what a formula may read
        formulas = [parse(d.formula) for d in self.derived]
        inputs = [[number_index[n] for n in f.inputs] for f in formulas]
        for i, d in enumerate(self.derived):
            names.append(d.name)
            raw_of.append(k + m + i)
        index: dict[tuple[int, str], int] = {}
        columns: list[dict[str, int]] = []
        start = len(names)
        for j, cat in enumerate(self.categorical):
            columns.append({})
            if cat.ordinal is not None:
                continue
            for c in cat.categories:
                columns[j][c] = len(names) - start
                index[(j, c)] = len(names)
                names.append(f"{cat.name}={c}")
                raw_of.append(k + j)
        set_ = object.__setattr__
        set_(self, "_columns", columns)
        set_(self, "names", names)
        set_(self, "raw_of", raw_of)
        set_(self, "category_index", index)
        set_(self, "ordinal", ordinal)
        set_(self, "ordinal_map", maps)
        set_(
            self,
            "ordinal_default",
            np.array(
                [mp[self.categorical[j].impute] for j, mp in zip(ordinal, maps, strict=True)],
                dtype=np.float64,
            ),
        )
        set_(self, "formulas", formulas)
        set_(self, "formula_columns", inputs)
        set_(self, "_formula_fns", [_compiled(f, c) for f, c in zip(formulas, inputs, strict=True)])
        set_(self, "derived_impute", np.array([d.impute for d in self.derived], dtype=np.float64))
        set_(self, "impute", np.array([f.impute for f in self.numeric], dtype=np.float64))
        mask = [f.log1p for f in self.numeric] + [False] * len(ordinal)
        set_(self, "log1p", np.array(mask + [d.log1p for d in self.derived], dtype=bool))

    @staticmethod
    def of(schema: InputSchema) -> EncodedLayout:
        return EncodedLayout(schema.numeric, schema.categorical, schema.derived_features())

    @property
    def raw_names(self) -> list[str]:
        """The reported features: numeric names, categorical names, then derived names."""
        return (
            [f.name for f in self.numeric]
            + [c.name for c in self.categorical]
            + [d.name for d in self.derived]
        )

    @property
    def width(self) -> int:
        """The number of encoded columns."""
        return len(self.names)

    @property
    def number_width(self) -> int:
        """Columns of the number block: numeric, ordinal and derived features."""
        return len(self.numeric) + len(self.ordinal) + len(self.derived)

    def to_raw(self) -> np.ndarray:
        """[encoded columns, reported features] 0/1 matrix: one matmul sums columns back."""
        matrix = np.zeros((self.width, len(self.raw_names)))
        matrix[np.arange(self.width), self.raw_of] = 1.0
        return matrix

    def encode(
        self, numeric: np.ndarray, categorical: np.ndarray, numbers: np.ndarray | None = None
    ) -> np.ndarray:
        """The graph's feature matrix (float32 [rows, columns]) from its two packed inputs;
        `numbers`: their number block (`numbers`) when the caller has it already."""
        blocks = []
        if self.number_width:
            if numbers is None:
                numbers = self.numbers(numeric, categorical)
            blocks.append(self._number_block(numbers))
        if self.category_index:
            blocks.append(self._onehot_block(categorical))
        if not blocks:
            return np.zeros((numeric.shape[0], 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def numbers(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The number block before log1p (float64): what the model sees of each numeric,
        ordinal and derived feature, e.g. the value explain reports for a derived one."""
        filled = np.where(np.isnan(numeric), self.impute, numeric)
        parts = [filled]
        if self.ordinal:
            parts.append(self._ordinal_block(categorical))
        block = np.hstack(parts) if len(parts) > 1 else filled
        if self.derived:
            w = block.shape[1]
            out = np.empty((block.shape[0], w + len(self.derived)), dtype=np.float64)
            out[:, :w] = block
            with np.errstate(all="ignore"):  # IEEE results; not finite → the median below
                for i, formula in enumerate(self._formula_fns):
                    out[:, w + i] = formula(block)  # a constant formula broadcasts
            derived = out[:, w:]
            np.copyto(derived, self.derived_impute, where=~np.isfinite(derived))
            block = out
        return np.asarray(block, dtype=np.float64)

    def _number_block(self, filled: np.ndarray) -> np.ndarray:
        if self.log1p.any():
            # log(1 + x), not log1p: the same operations the ONNX graph runs.
            with np.errstate(invalid="ignore"):
                logged = np.log(np.maximum(filled, 0.0) + 1.0)
            filled = np.where(self.log1p, logged, filled)
        return np.asarray(filled, dtype=np.float64).astype(np.float32)

    def _ordinal_block(self, categorical: np.ndarray) -> np.ndarray:
        n, k = categorical.shape[0], len(self.ordinal)
        # One pass over every ordinal cell (as `_onehot_block`): no numpy call per feature.
        columns = categorical[:, self.ordinal].T.tolist()
        levels = np.fromiter(
            (
                get(v, default)
                for mapping, default, col in zip(
                    self.ordinal_map, self.ordinal_default.tolist(), columns, strict=True
                )
                for get in (mapping.get,)
                for v in col
            ),
            dtype=np.float64,
            count=n * k,
        )
        return np.ascontiguousarray(levels.reshape(k, n).T)

    def _onehot_block(self, categorical: np.ndarray) -> np.ndarray:
        n, m = categorical.shape
        block = np.zeros((n, len(self.category_index)), dtype=np.float32)
        # One pass over every cell (a feature's column, -1 for an unseen category, which
        # sets none), then one scatter: no numpy call per feature on one-row requests.
        columns = categorical.T.tolist()
        cols = np.fromiter(
            (
                get(v, -1)
                for index, col in zip(self._columns, columns, strict=True)
                for get in (index.get,)
                for v in col
            ),
            dtype=np.int64,
            count=n * m,
        ).reshape(m, n)
        hit = cols >= 0
        block[np.nonzero(hit)[1], cols[hit]] = 1.0
        return block


#: A formula compiled to numpy calls on the number block (float64 [rows, columns]).
_Column = Callable[[np.ndarray], np.ndarray]


def _compiled(formula: Formula, columns: Sequence[int]) -> _Column:
    """`formula` as nested numpy calls on block columns, built once per layout: the same
    operations in the same order as `Formula.evaluate` (and the ONNX graph), without
    walking the tree for every request."""
    where = dict(zip(formula.inputs, columns, strict=True))
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}

    def num(value: float) -> _Column:
        constant = np.float64(value)
        return lambda block: np.asarray(constant)

    def col(name: str) -> _Column:
        c = where[name]
        return lambda block: np.asarray(block[:, c])

    def neg(operand: _Column) -> _Column:
        return lambda block: np.asarray(np.negative(operand(block)))

    def binary(op: str, left: _Column, right: _Column) -> _Column:
        ufunc = ops[op]
        return lambda block: np.asarray(ufunc(left(block), right(block)))

    return fold(formula.tree, num, col, neg, binary)
