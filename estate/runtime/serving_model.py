"""The served model: a verified bundle, its ONNX session and the packing of instances.

Imports numpy, onnxruntime and pydantic only; no settings, no HTTP. Online serving
(`estate.serving.versions` loads it once per instance, after the bundle's checksum is
verified) and batch scoring (`estate.batch.score`) run the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from estate.contract.bundle import MISSING_CATEGORY, Manifest, normalize_category
from estate.contract.instances import instance_adapter
from estate.runtime.explainer import Explainer
from estate.runtime.session import open_session


@dataclass(frozen=True)
class Packed:
    """A packed batch: the two ONNX inputs, and which cells are worth a warning."""

    numeric: np.ndarray  # [rows, numeric features], NaN where missing
    categorical: np.ndarray  # [rows, categorical features], normalised text
    missing_numeric: np.ndarray  # bool, same shape as numeric
    outside: np.ndarray  # bool: outside the training range
    missing_category: np.ndarray  # bool, same shape as categorical
    unknown: np.ndarray  # bool: a category not seen in training


@dataclass
class Prediction:
    """One row's outputs plus the warnings about its input."""

    value: float
    raw: float
    warnings: list[dict[str, str]] = field(default_factory=list)


class ServingModel:
    """A loaded bundle, ready to predict raw JSON instances."""

    def __init__(
        self,
        manifest: Manifest,
        model_bytes: bytes,
        threads: int = 1,
        explainer_bytes: bytes | None = None,
    ) -> None:
        self.manifest = manifest
        self.explainer = Explainer(manifest, explainer_bytes) if explainer_bytes else None
        self.session = open_session(model_bytes, threads)
        schema = manifest.input
        self.numeric = schema.numeric
        self.categorical = schema.categorical
        self._known = [set(c.categories) for c in self.categorical]
        self._blank: dict[str, Any] = dict.fromkeys(schema.names())
        self._num_get = _tuple_getter([f.name for f in self.numeric])
        self._cat_get = _tuple_getter([c.name for c in self.categorical])
        self._num_min = np.array([f.min for f in self.numeric], dtype=np.float64)
        self._num_max = np.array([f.max for f in self.numeric], dtype=np.float64)
        self._cat_impute = [c.impute for c in self.categorical]
        self._imputed = [
            _note(f.name, "imputed", f"missing; used the training median {f.impute:g}")
            for f in self.numeric
        ] + [
            _note(c.name, "imputed", f"missing; used the most common value {c.impute!r}")
            for c in self.categorical
        ]
        self.adapter: TypeAdapter[list[dict[str, Any]]] = instance_adapter(schema)

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.input.names()

    def pack(
        self, instances: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, str]]]]:
        """Validated instances → the two ONNX inputs, and per-row warnings.

        Notes keep the per-row order: numeric features first, then categorical, in
        manifest order. For large batches use `pack_flags` and `warning_summary`, which
        never build one note per cell.
        """
        packed = self.pack_flags(instances)
        warnings: list[list[dict[str, str]]] = [[] for _ in range(len(instances))]
        flagged = (packed.missing_numeric | packed.outside).any(axis=1) | (
            packed.missing_category | packed.unknown
        ).any(axis=1)
        for i in np.flatnonzero(flagged).tolist():
            warnings[i] = self.row_warnings(packed, i)
        return packed.numeric, packed.categorical, warnings

    def pack_flags(self, instances: list[dict[str, Any]]) -> Packed:
        """Validated instances → the two ONNX inputs, and which cells to warn about.

        Row lookups run in C (`itemgetter` over the row merged onto all-None defaults),
        numpy finds missing and out-of-range numbers in one pass, and only rows with a
        missing or unknown category cost a Python step per category, so the cost stays
        small for 1 row and for 5,000.
        """
        n, k, m = len(instances), len(self.numeric), len(self.categorical)
        numeric_rows, category_rows = self._lookup(instances)
        numeric = np.array(numeric_rows, dtype=np.float64).reshape(n, k)
        missing = np.isnan(numeric)  # None became NaN; validated input has no NaN of its own
        outside = (numeric < self._num_min) | (numeric > self._num_max)  # False for NaN
        missing_category = np.zeros((n, m), dtype=bool)
        unknown = np.zeros((n, m), dtype=bool)
        known, contains = self._known, set.__contains__
        all_texts = []
        for i, values in enumerate(category_rows):
            try:
                texts = list(map(str.strip, values))  # the common case: all strings
            except TypeError:  # None (missing) or a non-string
                texts = [
                    fill if v is None else normalize_category(v)
                    for v, fill in zip(values, self._cat_impute, strict=True)
                ]
            if "" in texts:
                texts = [t or MISSING_CATEGORY for t in texts]
            all_texts.append(texts)
            if None in values or not all(map(contains, known, texts)):
                for j, (value, text) in enumerate(zip(values, texts, strict=True)):
                    if value is None:
                        missing_category[i, j] = True
                    elif text not in known[j]:
                        unknown[i, j] = True
        categorical = np.empty((n, m), dtype=object)
        if n and m:
            categorical[:, :] = all_texts
        return Packed(numeric, categorical, missing, outside, missing_category, unknown)

    def row_warnings(self, packed: Packed, i: int) -> list[dict[str, str]]:
        """The notes of row `i` (the same as `pack` gives it)."""
        notes = [
            self._numeric_note(packed, i, j)
            for j in np.flatnonzero(packed.missing_numeric[i] | packed.outside[i]).tolist()
        ]
        return notes + self._category_notes(packed, i)

    def warning_summary(self, packed: Packed, rows_listed: int) -> list[dict[str, Any]]:
        """One entry per (feature, code) that any row triggered: how many rows, the
        first `rows_listed` row indices, and one message for all of them."""
        summary: list[dict[str, Any]] = []

        def add(name: str, code: str, message: str, mask: np.ndarray) -> None:
            rows = np.flatnonzero(mask)
            if rows.size:
                summary.append(
                    {
                        "field": name,
                        "code": code,
                        "message": message,
                        "count": int(rows.size),
                        "rows": rows[:rows_listed].tolist(),
                    }
                )

        for j, f in enumerate(self.numeric):
            add(f.name, "imputed", self._imputed[j]["message"], packed.missing_numeric[:, j])
            add(
                f.name,
                "out_of_range",
                f"outside the training range {f.min:g}…{f.max:g}; those estimates are "
                "extrapolations",
                packed.outside[:, j],
            )
        k = len(self.numeric)
        for j, c in enumerate(self.categorical):
            add(c.name, "imputed", self._imputed[k + j]["message"], packed.missing_category[:, j])
            add(
                c.name,
                "unknown_category",
                "a value not seen in training; it counts as none of the known values "
                f"({_preview(c.categories)})",
                packed.unknown[:, j],
            )
        return summary

    def _numeric_note(self, packed: Packed, i: int, j: int) -> dict[str, str]:
        if packed.missing_numeric[i, j]:
            return dict(self._imputed[j])
        feat, value = self.numeric[j], float(packed.numeric[i, j])
        return _note(
            feat.name,
            "out_of_range",
            f"{value:g} is outside the training range {feat.min:g}…{feat.max:g}; "
            "the estimate is an extrapolation",
        )

    def _lookup(
        self, instances: list[dict[str, Any]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Per row: numeric values and categorical values in manifest order, None if absent."""
        num_get, cat_get, blank = self._num_get, self._cat_get, self._blank
        numeric, categorical = [], []
        for row in instances:
            try:  # complete rows: two C-level lookups
                numeric.append(num_get(row))
                categorical.append(cat_get(row))
            except KeyError:  # some feature absent: look it up as None
                full = {**blank, **row}
                if len(numeric) > len(categorical):
                    numeric.pop()
                numeric.append(num_get(full))
                categorical.append(cat_get(full))
        return numeric, categorical

    def _category_notes(self, packed: Packed, i: int) -> list[dict[str, str]]:
        """Imputation and unknown-category notes of row `i`'s categorical values."""
        notes = []
        offset = len(self.numeric)
        for j in np.flatnonzero(packed.missing_category[i] | packed.unknown[i]).tolist():
            if packed.missing_category[i, j]:
                notes.append(dict(self._imputed[offset + j]))
                continue
            cat, text = self.categorical[j], packed.categorical[i, j]
            notes.append(
                _note(
                    cat.name,
                    "unknown_category",
                    f"{text!r} was not seen in training; it counts as none of the "
                    f"known values ({_preview(cat.categories)})",
                )
            )
        return notes

    def run(self, numeric: np.ndarray, categorical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One onnxruntime call for the whole batch: (prediction, raw)."""
        prediction, raw = self.session.run(numeric, categorical)
        return prediction, raw

    def predict(self, instances: list[dict[str, Any]]) -> list[Prediction]:
        numeric, categorical, warnings = self.pack(instances)
        prediction, raw = self.run(numeric, categorical)
        return [
            Prediction(float(p), float(r), w)
            for p, r, w in zip(prediction, raw, warnings, strict=True)
        ]

    def interval(self, raw: float) -> tuple[float, float] | None:
        """Conformal interval in target units (regression only)."""
        spec = self.manifest.interval
        if spec is None:
            return None
        lo, hi = raw - spec.quantile, raw + spec.quantile
        if self.manifest.output.target_transform == "log":
            return float(np.exp(lo)), float(np.exp(hi))
        return lo, hi


def _tuple_getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``itemgetter(*names)`` that always returns a tuple (also for 0 or 1 name)."""
    if len(names) > 1:
        return itemgetter(*names)
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return lambda row: ()


def _preview(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(values[:limit])
    return shown + (", …" if len(values) > limit else "")


def _note(field_name: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_name, "code": code, "message": message}


def model_info(model: ServingModel) -> dict[str, Any]:
    """The model identity every response carries."""
    m = model.manifest
    return {"name": m.name, "version": m.version}
