"""The served model: a verified bundle, its ONNX session and the packing of instances.

Imports numpy, onnxruntime and pydantic only. The bundle is loaded once per instance
(lazy global, on the first request) and its checksum is verified before a session is
created, so a truncated or tampered ``model.onnx`` is never served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from pydantic import TypeAdapter

from functions.explainer import Explainer
from functions.schema import instance_adapter
from functions.settings import get_settings
from model_export.bundle import (
    CATEGORICAL_INPUT,
    MISSING_CATEGORY,
    NUMERIC_INPUT,
    PREDICTION_OUTPUT,
    RAW_OUTPUT,
    Manifest,
    normalize_category,
)

if TYPE_CHECKING:
    from functions.routing import ModelHolder


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
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        schema = manifest.input
        self.numeric = schema.numeric
        self.categorical = schema.categorical
        self._known = [set(c.categories) for c in self.categorical]
        self.adapter: TypeAdapter[list[dict[str, Any]]] = instance_adapter(schema)
        self._inputs = {i.name for i in self.session.get_inputs()}

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.input.names()

    def pack(
        self, instances: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, str]]]]:
        """Validated instances → the two ONNX inputs, and per-row warnings.

        Column at a time: one list comprehension gathers a column, numpy finds the
        missing and out-of-range cells, and only flagged cells cost a Python step. Notes
        keep the per-row order numeric features first, then categorical, each in
        manifest order.
        """
        n = len(instances)
        numeric = np.full((n, len(self.numeric)), np.nan, dtype=np.float64)
        categorical = np.empty((n, len(self.categorical)), dtype=object)
        warnings: list[list[dict[str, str]]] = [[] for _ in range(n)]
        for j, feat in enumerate(self.numeric):
            name = feat.name
            column = np.array([row.get(name) for row in instances], dtype=np.float64)
            numeric[:, j] = column
            missing = np.isnan(column)
            outside = (column < feat.min) | (column > feat.max)  # False where NaN
            if not (missing.any() or outside.any()):
                continue
            imputed = _note(name, "imputed", f"missing; used the training median {feat.impute:g}")
            for i in np.flatnonzero(missing | outside).tolist():
                if missing[i]:
                    warnings[i].append(dict(imputed))
                    continue
                value = float(column[i])
                warnings[i].append(
                    _note(
                        name,
                        "out_of_range",
                        f"{value:g} is outside the training range {feat.min:g}…{feat.max:g}; "
                        "the estimate is an extrapolation",
                    )
                )
        for j, cat in enumerate(self.categorical):
            name, known = cat.name, self._known[j]
            raw = [row.get(name) for row in instances]
            texts = [
                cat.impute
                if v is None
                else (v.strip() or MISSING_CATEGORY)
                if isinstance(v, str)
                else normalize_category(v)
                for v in raw
            ]
            categorical[:, j] = texts
            flagged = [i for i, t in enumerate(texts) if raw[i] is None or t not in known]
            if not flagged:
                continue
            imputed = _note(name, "imputed", f"missing; used the most common value {cat.impute!r}")
            for i in flagged:
                if raw[i] is None:
                    warnings[i].append(dict(imputed))
                    continue
                warnings[i].append(
                    _note(
                        name,
                        "unknown_category",
                        f"{texts[i]!r} was not seen in training; it counts as none of the "
                        f"known values ({_preview(cat.categories)})",
                    )
                )
        return numeric, categorical, warnings

    def run(self, numeric: np.ndarray, categorical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One onnxruntime call for the whole batch: (prediction, raw)."""
        feeds: dict[str, np.ndarray] = {}
        if NUMERIC_INPUT in self._inputs:
            feeds[NUMERIC_INPUT] = numeric
        if CATEGORICAL_INPUT in self._inputs:
            feeds[CATEGORICAL_INPUT] = categorical
        prediction, raw = self.session.run([PREDICTION_OUTPUT, RAW_OUTPUT], feeds)
        return np.asarray(prediction, dtype=np.float64), np.asarray(raw, dtype=np.float64)

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


def _preview(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(values[:limit])
    return shown + (", …" if len(values) > limit else "")


def _note(field_name: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_name, "code": code, "message": message}


_holder: ModelHolder | None = None


def holder() -> ModelHolder:
    """This instance's model holder, shared by every function in the process (lazy global).

    `functions.routing.ModelHolder` follows the serving pointer (champion + canary);
    functions pick a model per request with `functions.routing.model_for`.
    """
    from functions.routing import ModelHolder

    global _holder
    if _holder is None:
        _holder = ModelHolder(get_settings())
    return _holder


def model_info(model: ServingModel) -> dict[str, Any]:
    """The model identity every response carries."""
    m = model.manifest
    return {"name": m.name, "version": m.version}
