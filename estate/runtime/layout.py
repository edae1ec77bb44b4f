"""The encoded column layout: how the graph's two packed inputs become its feature matrix.

Numeric features are imputed with the training median, optionally log(1 + max(x, 0))-ed
and cast to float32; each categorical feature becomes one one-hot column per training
category (an unseen category encodes as all zeros). The columns are the numeric features
in order, then ``feature=category`` per categorical feature. This module is the one
statement of that rule: training fits it (`estate.training.encoder`), export writes it as
ONNX nodes (`estate.export.onnx_graph`) and SHAP tables over its columns, and the runtime
explainer re-encodes rows with `EncodedLayout.encode`, the numpy reference the ONNX graph
is tested against. Transforms run in float64 and cast to float32 last, as the graph does,
so tree splits see bit-identical values on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from estate.contract.bundle import CategoricalFeature, InputSchema, NumericFeature


@dataclass(frozen=True)
class EncodedLayout:
    """The encoded columns of an input schema, and the numpy reference of the encoding."""

    numeric: Sequence[NumericFeature]
    categorical: Sequence[CategoricalFeature]
    names: list[str] = field(init=False)
    impute: np.ndarray = field(init=False)  # float64 [numeric features]
    log1p: np.ndarray = field(init=False)  # bool [numeric features]
    category_index: dict[tuple[int, str], int] = field(init=False)
    _columns: list[dict[str, int]] = field(init=False, repr=False)  # per feature, in the block
    raw_of: list[int] = field(init=False)  # the raw feature each encoded column comes from

    def __post_init__(self) -> None:
        names = [f.name for f in self.numeric]
        raw_of = list(range(len(self.numeric)))
        index: dict[tuple[int, str], int] = {}
        columns: list[dict[str, int]] = []
        for j, cat in enumerate(self.categorical):
            columns.append({})
            for c in cat.categories:
                columns[j][c] = len(names) - len(self.numeric)
                index[(j, c)] = len(names)
                names.append(f"{cat.name}={c}")
                raw_of.append(len(self.numeric) + j)
        set_ = object.__setattr__
        set_(self, "_columns", columns)
        set_(self, "names", names)
        set_(self, "raw_of", raw_of)
        set_(self, "category_index", index)
        set_(self, "impute", np.array([f.impute for f in self.numeric], dtype=np.float64))
        set_(self, "log1p", np.array([f.log1p for f in self.numeric], dtype=bool))

    @staticmethod
    def of(schema: InputSchema) -> EncodedLayout:
        return EncodedLayout(schema.numeric, schema.categorical)

    @property
    def raw_names(self) -> list[str]:
        """The raw features: numeric names, then categorical names."""
        return [f.name for f in self.numeric] + [c.name for c in self.categorical]

    @property
    def width(self) -> int:
        """The number of encoded columns."""
        return len(self.names)

    def to_raw(self) -> np.ndarray:
        """[encoded columns, raw features] 0/1 matrix: one matmul sums one-hot columns back."""
        matrix = np.zeros((self.width, len(self.raw_names)))
        matrix[np.arange(self.width), self.raw_of] = 1.0
        return matrix

    def encode(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The graph's feature matrix (float32 [rows, columns]) from its two packed inputs."""
        blocks = [self._numeric_block(numeric)] if self.numeric else []
        if self.categorical:
            blocks.append(self._onehot_block(categorical))
        return np.hstack(blocks).astype(np.float32)

    def _numeric_block(self, numeric: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(numeric), self.impute, numeric)
        if self.log1p.any():
            # log(1 + x), not log1p: the same operations the ONNX graph runs.
            logged = np.log(np.maximum(filled, 0.0) + 1.0)
            filled = np.where(self.log1p, logged, filled)
        return np.asarray(filled, dtype=np.float64).astype(np.float32)

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
