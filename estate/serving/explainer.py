"""Explanations of the served model: exact SHAP values per raw feature, readable by people.

`Explainer` loads the bundle's ``explainer.npz`` (numpy arrays, no pickle), re-encodes
packed instances exactly as the ONNX graph does (impute → log1p → float32 → one-hot),
adds exact linear SHAP and TreeSHAP (`estate.runtime.treeshap`) on the encoded columns and
sums one-hot columns back to the raw feature they came from. `explain_instances` is the
in-process API (the ``explain`` endpoint and the chat function both call it).

For log-price models each contribution is given three ways: ``shap`` (log space; base +
Σ shap = log of the predicted price), ``factor`` = exp(shap) (the price is exp(base) x Π
factors) and ``effect`` in the target's units. Effects are applied *sequentially*, largest
|shap| first, starting from exp(base): each effect is the change in price that factor
makes given the ones before it, so the effects sum exactly to price - exp(base).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from estate.contract.bundle import Manifest
from estate.contract.errors import BundleError
from estate.runtime.treeshap import TreePaths, tree_shap
from estate.serving.errors import HttpError, bad_request, out_of_range, require_finite
from estate.serving.schema import parse_body, validate_instances

if TYPE_CHECKING:
    from estate.serving.model import ServingModel

_PATH_KEYS = ("feature", "lower", "upper", "zero", "missing", "leq", "value", "length")


class Explainer:
    """Exact SHAP values of one bundle's model, from its explainer file."""

    def __init__(self, manifest: Manifest, data: bytes) -> None:
        spec = manifest.explainer
        if spec is None:
            raise BundleError(f"{manifest.name}/{manifest.version} has no explainer.")
        self.spec = spec
        self.log_target = manifest.output.target_transform == "log"
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise BundleError(f"{spec.file} is not a readable numpy archive: {exc}") from exc
        schema = manifest.input
        names = [f.name for f in schema.numeric]
        raw_of: list[int] = list(range(len(schema.numeric)))
        self._onehot: list[dict[str, int]] = []
        for j, cat in enumerate(schema.categorical):
            self._onehot.append({c: len(names) + i for i, c in enumerate(cat.categories)})
            names.extend(f"{cat.name}={c}" for c in cat.categories)
            raw_of.extend([len(schema.numeric) + j] * len(cat.categories))
        if list(arrays.get("encoded_names", [])) != names:
            raise BundleError(
                f"{spec.file} was built for other encoded columns than the manifest's input "
                "schema; re-export the bundle."
            )
        self.raw_names = schema.names()
        self.n_columns = len(names)
        self._impute = np.array([f.impute for f in schema.numeric], dtype=np.float64)
        self._log1p = np.array([f.log1p for f in schema.numeric], dtype=bool)
        # [encoded columns, raw features] 0/1 matrix: one matmul sums one-hot columns back.
        self._to_raw = np.zeros((self.n_columns, len(self.raw_names)))
        self._to_raw[np.arange(self.n_columns), raw_of] = 1.0
        self.coef = arrays["linear_coef"]
        self.mean = arrays["linear_mean"]
        self.base = float(arrays["base_value"])
        self.paths: TreePaths | None = None
        if arrays["path_value"].size:
            self.paths = TreePaths(**{k: arrays[f"path_{k}"] for k in _PATH_KEYS})

    def encode(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The ONNX graph's encoded features (float32 values held as float64)."""
        n = numeric.shape[0] if numeric.ndim == 2 else categorical.shape[0]
        Z = np.zeros((n, self.n_columns), dtype=np.float32)
        k = self._impute.size
        if k:
            filled = np.where(np.isnan(numeric), self._impute, numeric)
            logged = np.log(np.maximum(filled, 0.0) + 1.0)  # as the graph: log(1 + x)
            Z[:, :k] = np.where(self._log1p, logged, filled).astype(np.float32)
        for j, index in enumerate(self._onehot):
            for i, value in enumerate(categorical[:, j]):
                col = index.get(value)
                if col is not None:
                    Z[i, col] = 1.0
        return Z.astype(np.float64)

    def shap_encoded(self, Z: np.ndarray) -> np.ndarray:
        """SHAP values per encoded column [rows, columns]."""
        phi = self.coef * (Z - self.mean)
        if self.paths is not None:
            phi = phi + tree_shap(self.paths, Z)
        return np.asarray(phi)

    def shap(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """SHAP values per raw feature [rows, features]; rows sum to output - base."""
        return self.shap_encoded(self.encode(numeric, categorical)) @ self._to_raw

    def explained(self, raw: np.ndarray) -> np.ndarray:
        """The ONNX raw output in the explained scale."""
        if self.spec.scale == "log_odds":
            p = np.clip(raw, 1e-12, 1 - 1e-12)
            return np.asarray(np.log(p) - np.log1p(-p))
        return raw


class ExplainRequest(BaseModel):
    """``{"instances": [...], "top_k": optional}``: predict's envelope plus a cut-off."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Any] = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, strict=True, description="Keep the k largest.")


def parse_explain_envelope(body: Any) -> ExplainRequest:
    """The request envelope, or a 400 naming every bad field."""
    return parse_body(
        ExplainRequest,
        body,
        "unknown field: the body takes 'instances' and 'top_k'",
        'The body must be {"instances": [{feature: value, ...}, ...], "top_k": k}.',
    )


def not_explainable(model: ServingModel) -> HttpError:
    m = model.manifest
    return HttpError(
        501,
        "No explainer",
        f"{m.name}/{m.version} ({m.chosen}) was exported without an explainer: only "
        "ridge/logistic, XGBoost, random forests and blends of them are explained. "
        "Use predict, or retrain with one of those candidates.",
        "no-explainer",
    )


def explain_instances(
    model: ServingModel, instances: list[dict[str, Any]], top_k: int | None = None
) -> list[dict[str, Any]]:
    """Validate raw instances and explain each one (the endpoint's per-instance JSON).

    Raises `HttpError` (400 for bad fields, 501 when the bundle has no explainer).
    """
    explainer: Explainer | None = getattr(model, "explainer", None)
    if explainer is None:
        raise not_explainable(model)
    rows = validate_instances(model.adapter, instances)
    for i, row in enumerate(rows):
        if all(v is None for v in row.values()):
            raise bad_request(
                f"instances[{i}] has no feature values; send at least one "
                "(GET this URL for the list)."
            )
    numeric, categorical, warnings = model.pack(rows)
    prediction, _ = model.run(numeric, categorical)
    with np.errstate(all="ignore"):  # overflow from absurd inputs is reported as a 422
        phi = explainer.shap(numeric, categorical)
    answers = []
    for i in range(len(rows)):
        try:
            item = _one(
                model,
                explainer,
                rows[i],
                (numeric[i], categorical[i]),
                float(prediction[i]),
                phi[i],
                top_k,
            )
        except OverflowError:  # exp() of an absurd SHAP value: not a finite answer either
            require_finite(
                math.inf, f"explanations[{i}]", out_of_range(warnings[i], f"instances[{i}]")
            )
            raise
        require_finite(item, f"explanations[{i}]", out_of_range(warnings[i], f"instances[{i}]"))
        answers.append(item | {"warnings": warnings[i]})
    return answers


def _one(
    model: ServingModel,
    explainer: Explainer,
    row: dict[str, Any],
    packed: tuple[np.ndarray, np.ndarray],
    prediction: float,
    phi: np.ndarray,
    top_k: int | None = None,
) -> dict[str, Any]:
    """One instance's explanation, contributions sorted by |shap|.

    ``value`` is what the model used: the instance's value, or the imputed one (then
    ``imputed: true``, and the warnings say so too)."""
    m = model.manifest
    numeric, categorical = packed
    out = m.output.name
    base = explainer.base
    values: list[Any] = [
        _number(float(f.impute if math.isnan(v) else v), f.integer)
        for f, v in zip(m.input.numeric, numeric, strict=True)
    ]
    values += [str(c) for c in categorical]
    imputed = [row.get(name) is None for name in explainer.raw_names]
    order = np.argsort(-np.abs(phi), kind="stable")
    items: list[dict[str, Any]] = []
    level = math.exp(base) if explainer.log_target else base
    for j in order:
        item: dict[str, Any] = {"feature": explainer.raw_names[j], "value": values[j]}
        if imputed[j]:
            item["imputed"] = True
        item["shap"] = float(phi[j])
        if explainer.log_target:
            item["factor"] = math.exp(phi[j])
            after = level * item["factor"]
            item["effect"] = after - level
            level = after
        elif explainer.spec.scale == "raw":
            item["effect"] = float(phi[j])
        items.append(item)
    answer: dict[str, Any] = {
        out: prediction,
        "base_value": {"shap": base},
        "scale": _scale_name(model, explainer),
        "contributions": items[:top_k] if top_k else items,
    }
    if explainer.log_target:
        answer["base_value"][out] = math.exp(base)
    if top_k and len(items) > top_k:
        rest = items[top_k:]
        other: dict[str, Any] = {
            "features": len(rest),
            "shap": float(sum(r["shap"] for r in rest)),
        }
        if "effect" in rest[0]:
            other["effect"] = float(sum(r["effect"] for r in rest))
        if explainer.log_target:
            other["factor"] = math.exp(other["shap"])
        answer["other_features"] = other
    return answer


def _number(value: float, integer: bool) -> float | int:
    """Whole numbers of an integer feature print as integers ("Fireplaces = 2")."""
    return int(value) if integer and value.is_integer() else value


def _scale_name(model: ServingModel, explainer: Explainer) -> str:
    """Human name of what base + Σ shap adds up to."""
    out = model.manifest.output
    if explainer.spec.scale == "log_odds":
        return f"log-odds of {out.name}"
    if explainer.log_target:
        return f"log({out.name})"
    return f"{out.name} ({out.units})"
