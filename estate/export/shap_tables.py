"""Export side of explanations: SHAP tables of the fitted estimator, as ``explainer.npz``.

SHAP values are linear in the model output, so an ensemble's explanation is the
weighted sum of its members': exact linear SHAP (coefficient x (x - training mean)) for
ridge / logistic pipelines, exact path-dependent TreeSHAP for XGBoost and random forests.
Tree tables are read from the fitted models with the ONNX graph's own rules: float32
thresholds, ``x < t`` for XGBoost and ``x <= t`` for scikit-learn, the default direction
for missing values, and cover = training rows (scikit-learn) or hessian sum (XGBoost).
The file holds `EXPLAINER_ARRAYS` and TreeSHAP's lookup tables solved from the paths
(``solved_*``), so that serving reads them instead of solving them at every cold start.
Serving reads the file with ``np.load(allow_pickle=False)`` and imports no training library.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from estate.contract.bundle import (
    EXPLAINER_FILE,
    EXPLAINER_SOLVED_PREFIX,
    RAW_OUTPUT,
    ExplainerSpec,
    sha256_hex,
)
from estate.contract.errors import ExportError
from estate.runtime.explainer import ShapTables
from estate.runtime.layout import EncodedLayout
from estate.runtime.session import run_graph
from estate.runtime.treeshap import paths_from_nodes

#: Largest |offset spread| tolerated when recovering XGBoost's base margin.
_OFFSET_TOLERANCE = 1e-3


class UnsupportedModelError(Exception):
    """The estimator has no exact explainer here (the bundle is then written without one)."""


@dataclass
class _Trees:
    """Node tables of every tree, children indexed within their own tree."""

    feature: list[np.ndarray]
    threshold: list[np.ndarray]
    left: list[np.ndarray]
    right: list[np.ndarray]
    default_left: list[np.ndarray]
    value: list[np.ndarray]
    cover: list[np.ndarray]
    weight: list[float]
    leq: list[bool]

    @staticmethod
    def empty() -> _Trees:
        return _Trees([], [], [], [], [], [], [], [], [])

    def add(self, tree: dict[str, np.ndarray], weight: float, leq: bool) -> None:
        self.feature.append(tree["feature"].astype(np.int32))
        self.threshold.append(tree["threshold"].astype(np.float32))
        self.left.append(tree["left"].astype(np.int32))
        self.right.append(tree["right"].astype(np.int32))
        self.default_left.append(tree["default_left"].astype(bool))
        self.value.append(tree["value"].astype(np.float64))
        self.cover.append(tree["cover"].astype(np.float64))
        self.weight.append(weight)
        self.leq.append(leq)

    def arrays(self) -> dict[str, np.ndarray]:
        sizes = [len(f) for f in self.feature]
        cat = np.concatenate
        return {
            "node_feature": cat(self.feature) if sizes else np.zeros(0, np.int32),
            "node_threshold": cat(self.threshold) if sizes else np.zeros(0, np.float32),
            "node_left": cat(self.left) if sizes else np.zeros(0, np.int32),
            "node_right": cat(self.right) if sizes else np.zeros(0, np.int32),
            "node_default_left": cat(self.default_left) if sizes else np.zeros(0, bool),
            "node_value": cat(self.value) if sizes else np.zeros(0),
            "node_cover": cat(self.cover) if sizes else np.zeros(0),
            "tree_start": np.cumsum([0, *sizes[:-1]]).astype(np.int64) if sizes else np.zeros(0),
            "tree_weight": np.array(self.weight, dtype=np.float64),
            "tree_leq": np.array(self.leq, dtype=bool),
        }


def _xgb_trees(model: Any) -> list[dict[str, np.ndarray]]:
    """XGBoost trees from its JSON model: exact float32 split values and hessian covers."""
    raw = json.loads(model.get_booster().save_raw("json"))
    trees = []
    for t in raw["learner"]["gradient_booster"]["model"]["trees"]:
        if any(int(s) != 0 for s in t.get("split_type", [])):
            raise UnsupportedModelError(
                "XGBoost categorical splits are not supported by the explainer"
            )
        left = np.asarray(t["left_children"], dtype=np.int64)
        cond = np.asarray(t["split_conditions"], dtype=np.float32)
        leaf = left < 0
        trees.append(
            {
                "feature": np.where(leaf, -1, np.asarray(t["split_indices"])),
                "threshold": np.where(leaf, 0.0, cond).astype(np.float32),
                "left": left,
                "right": np.asarray(t["right_children"], dtype=np.int64),
                "default_left": np.asarray(t["default_left"], dtype=bool),
                "value": np.where(leaf, cond.astype(np.float64), 0.0),
                "cover": np.asarray(t["sum_hessian"], dtype=np.float64),
            }
        )
    return trees


def _sklearn_trees(forest: Any, classifier: bool) -> list[dict[str, np.ndarray]]:
    """scikit-learn trees: float32 thresholds as skl2onnx writes them, weighted row counts."""
    trees = []
    for est in forest.estimators_:
        t = est.tree_
        leaf = t.children_left < 0
        if classifier:
            counts = t.value[:, 0, :]
            value = counts[:, 1] / np.maximum(counts.sum(axis=1), 1e-300)
        else:
            value = t.value[:, 0, 0]
        trees.append(
            {
                "feature": np.where(leaf, -1, t.feature),
                "threshold": np.where(leaf, 0.0, _float32_below(t.threshold)),
                "left": t.children_left,
                "right": t.children_right,
                # skl2onnx never sets missing_value_tracks_true for forests: in the served
                # graph NaN fails ``x <= t`` and goes right (the encoder imputes anyway).
                "default_left": np.zeros(t.node_count, dtype=bool),
                "value": np.where(leaf, value, 0.0),
                "cover": t.weighted_n_node_samples,
            }
        )
    return trees


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """Largest float32 <= each float64 threshold, as skl2onnx writes them for ``x <= t``.

    scikit-learn compares float32 inputs with float64 thresholds; this float32 keeps every
    decision identical (x <= t exactly when x <= result), unlike plain rounding."""
    near = threshold.astype(np.float32)
    return np.where(near > threshold, np.nextafter(near, np.float32(-np.inf)), near)


def _members(estimator: Any) -> list[tuple[str, float, Any]]:
    """(name, weight, fitted model) of a voting ensemble, or the estimator itself."""
    if type(estimator).__name__ in ("VotingRegressor", "VotingClassifier"):
        names = [n for n, _ in estimator.estimators]
        given = estimator.weights  # training passes an array: no truth-value tests
        weights = np.ones(len(names)) if given is None else np.asarray(given, dtype=float)
        weights = weights / weights.sum()
        return list(zip(names, weights.tolist(), estimator.estimators_, strict=True))
    return [(type(estimator).__name__, 1.0, estimator)]


#: Final steps of a StandardScaler pipeline explained exactly by linear SHAP.
_LINEAR = ("Ridge", "Lasso", "ElasticNet", "LogisticRegression")


def _kind(model: Any) -> str:
    name = type(model).__name__
    if name == "Pipeline" and type(model.steps[-1][1]).__name__ in _LINEAR:
        return "linear"
    if name in ("XGBRegressor", "XGBClassifier"):
        return "xgboost"
    if name in ("RandomForestRegressor", "RandomForestClassifier"):
        return "random_forest"
    raise UnsupportedModelError(f"no exact explainer for {name}")


def _linear(model: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients on the encoded columns, their training means and the intercept."""
    scaler, last = model.steps[0][1], model.steps[-1][1]
    if len(model.steps) != 2 or type(scaler).__name__ != "StandardScaler":
        raise UnsupportedModelError(
            "linear explanations need StandardScaler → Ridge/LogisticRegression"
        )
    coef = np.asarray(last.coef_, dtype=np.float64).ravel()
    scale = scaler.scale_ if scaler.scale_ is not None else np.ones_like(coef)
    mean = scaler.mean_ if scaler.mean_ is not None else np.zeros_like(coef)
    intercept = float(np.ravel(last.intercept_)[0])
    return coef / scale, np.asarray(mean, dtype=np.float64), intercept


@dataclass
class Built:
    """The explainer file's arrays and what the manifest says about them."""

    arrays: dict[str, np.ndarray]
    scale: str
    kinds: dict[str, str]

    def to_bytes(self) -> bytes:
        """The ``.npz`` file: the solved tables stored as they are (float32 lookup tables
        barely compress, and inflating them costs a cold start more than reading them),
        the rest deflated; a fixed timestamp, so the same tables give the same sha256."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for key, array in self.arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                solved = key.startswith(EXPLAINER_SOLVED_PREFIX)
                info.compress_type = zipfile.ZIP_STORED if solved else zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        return buffer.getvalue()


def build_tables(
    layout: EncodedLayout, estimator: Any, *, classifier: bool, Z_sample: np.ndarray
) -> Built:
    """Every array serving needs to explain `estimator` exactly; `UnsupportedModelError` otherwise.

    `Z_sample` (encoded training rows) recovers XGBoost's base margin and checks that the
    tree tables reproduce each tree model's own output.
    """
    n_cols = layout.width
    coef_sum = np.zeros(n_cols)
    mean = np.zeros(n_cols)
    base = 0.0
    trees = _Trees.empty()
    scales = set()
    kinds: dict[str, str] = {}
    members = _members(estimator)
    for name, weight, model in members:
        kind = _kind(model)
        kinds[name] = kind
        if kind == "linear":
            coef, mu, intercept = _linear(model)
            if np.any(coef_sum != 0):
                raise UnsupportedModelError("only one linear member per ensemble is supported")
            coef_sum, mean = weight * coef, mu
            base += weight * intercept
            scales.add("log_odds" if classifier else "raw")
            continue
        tables = _xgb_trees(model) if kind == "xgboost" else _sklearn_trees(model, classifier)
        share = weight if kind == "xgboost" else weight / len(tables)
        own = _Trees.empty()
        for t in tables:
            trees.add(t, share, leq=kind != "xgboost")
            own.add(t, 1.0 if kind == "xgboost" else 1.0 / len(tables), leq=kind != "xgboost")
        own_paths = paths_from_nodes(**_path_args(own.arrays()))
        output = _own_output(model, kind, classifier, Z_sample)
        offset = output - own_paths.predict(Z_sample.astype(np.float64))
        if np.ptp(offset) > _OFFSET_TOLERANCE:
            raise UnsupportedModelError(
                f"the tree tables of {name} do not reproduce its output "
                f"(spread {np.ptp(offset):.3g}); the explainer would not add up"
            )
        base += weight * float(np.mean(offset))
        scales.add("log_odds" if classifier and kind == "xgboost" else "raw")
    if len(scales) != 1 or (classifier and len(members) > 1 and scales != {"raw"}):
        raise UnsupportedModelError(
            "a soft-voting classifier averages probabilities, which only random forests "
            "explain additively"
        )
    arrays = trees.arrays()
    paths = paths_from_nodes(**_path_args(arrays))
    base += paths.expected_value() if paths.value.size else 0.0
    arrays.update(
        {
            "encoded_names": np.array(layout.names, dtype=str),
            "linear_coef": coef_sum,
            "linear_mean": mean,
            "base_value": np.array(base),
            "path_feature": paths.feature,
            "path_lower": paths.lower,
            "path_upper": paths.upper,
            "path_zero": paths.zero,
            "path_missing": paths.missing,
            "path_leq": paths.leq,
            "path_value": paths.value,
            "path_length": paths.length,
        }
    )
    if paths.value.size:  # solved once here, so that serving only reads them (load time)
        arrays.update(ShapTables(coef_sum, mean, base, paths).solved_arrays())
    return Built(arrays=arrays, scale=scales.pop(), kinds=kinds)


def _path_args(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "feature": arrays["node_feature"],
        "threshold": arrays["node_threshold"],
        "left": arrays["node_left"],
        "right": arrays["node_right"],
        "default_left": arrays["node_default_left"],
        "value": arrays["node_value"],
        "cover": arrays["node_cover"],
        "tree_start": arrays["tree_start"],
        "tree_weight": arrays["tree_weight"],
        "tree_leq": arrays["tree_leq"],
    }


def _own_output(model: Any, kind: str, classifier: bool, Z: np.ndarray) -> np.ndarray:
    """The member's output in the explained scale (XGBoost classifiers: the margin)."""
    if kind == "xgboost":
        return np.asarray(model.predict(Z, output_margin=True), dtype=np.float64)
    if classifier:
        return np.asarray(model.predict_proba(Z)[:, 1], dtype=np.float64)
    return np.asarray(model.predict(Z), dtype=np.float64)


def explainer_spec(
    built: Built, data: bytes, *, importance: dict[str, float], rows: int, additivity: float
) -> ExplainerSpec:
    """The manifest's description of the explainer file."""
    kinds = set(built.kinds.values())
    return ExplainerSpec(
        kind="blend" if len(built.kinds) > 1 else kinds.pop(),  # type: ignore[arg-type]
        members=built.kinds,
        file=EXPLAINER_FILE,
        sha256=sha256_hex(data),
        bytes=len(data),
        scale=built.scale,  # type: ignore[arg-type]
        base_value=float(built.arrays["base_value"]),
        global_importance=importance,
        importance_rows=rows,
        additivity_max_abs_error=additivity,
    )


def shap_values(built: Built, Z: np.ndarray) -> np.ndarray:
    """SHAP per encoded column with the serving algorithm, from the built arrays."""
    return ShapTables.of(built.arrays).shap_encoded(Z)


def export_explainer(
    layout: EncodedLayout,
    estimator: Any,
    *,
    classifier: bool,
    model_bytes: bytes,
    parity_rows: tuple[np.ndarray, np.ndarray],
    sample_rows: tuple[np.ndarray, np.ndarray],
    tolerance: float = 1e-3,
) -> tuple[bytes, ExplainerSpec] | None:
    """The explainer file and its manifest entry; None when the model has no exact explainer.

    Global importance is mean |SHAP| per raw feature over `sample_rows` (training rows);
    additivity is measured against the ONNX graph on `parity_rows` and must stay within
    `tolerance`, or the export fails: an explanation that does not add up is not served.
    """
    Z_sample = layout.encode(*sample_rows).astype(np.float64)
    try:
        built = build_tables(layout, estimator, classifier=classifier, Z_sample=Z_sample)
    except UnsupportedModelError:
        return None
    importance = np.abs(shap_values(built, Z_sample) @ layout.to_raw()).mean(axis=0)
    ranked = sorted(zip(layout.raw_names, importance.tolist(), strict=True), key=lambda t: -t[1])
    Z_parity = layout.encode(*parity_rows).astype(np.float64)
    total = float(built.arrays["base_value"]) + shap_values(built, Z_parity).sum(axis=1)
    raw = run_graph(model_bytes, *parity_rows, output=RAW_OUTPUT)
    if built.scale == "log_odds":
        error = np.abs(1 / (1 + np.exp(-total)) - raw)
    else:
        error = np.abs(total - raw)
    worst = float(error.max(initial=0.0))
    if not worst <= tolerance:
        raise ExportError(
            f"SHAP additivity failed: base + Σ SHAP differs from the ONNX output by {worst:.3g} "
            f"> {tolerance:g}; nothing was written. Report this as a bug."
        )
    data = built.to_bytes()
    spec = explainer_spec(
        built,
        data,
        importance={k: round(v, 6) for k, v in ranked},
        rows=int(Z_sample.shape[0]),
        additivity=worst,
    )
    return data, spec
