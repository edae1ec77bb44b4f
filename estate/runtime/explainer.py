"""Exact SHAP values of a bundle's model, on packed arrays (no request, no HTTP).

`Explainer` loads the bundle's ``explainer.npz`` (numpy arrays, no pickle; its layout is
`estate.contract.bundle.EXPLAINER_ARRAYS`, plus the solved tables when saved), re-encodes
packed instances exactly as the ONNX graph does (`estate.runtime.layout`), adds exact
linear SHAP and TreeSHAP (`estate.runtime.treeshap`) on the encoded columns and sums
one-hot columns back to the raw feature they came from (a derived feature's column is
its own: its SHAP value is reported as that feature, beside the inputs' own).
`ShapTables` is the arithmetic on the file's arrays, shared with the export side's
additivity check. Turning the values into per-instance answers is
`estate.runtime.explanations`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from estate.contract.bundle import EXPLAINER_ARRAYS, EXPLAINER_SOLVED_PREFIX, Manifest
from estate.contract.errors import BundleError
from estate.runtime.layout import EncodedLayout
from estate.runtime.treeshap import TreePaths, can_restore, tree_shap

_PATH_KEYS = ("feature", "lower", "upper", "zero", "missing", "leq", "value", "length")


@dataclass(frozen=True)
class ShapTables:
    """The explainer file's arithmetic: linear SHAP plus TreeSHAP per encoded column."""

    coef: np.ndarray
    mean: np.ndarray
    base: float
    paths: TreePaths | None

    @staticmethod
    def of(arrays: Mapping[str, np.ndarray]) -> ShapTables:
        """The tables of a file's arrays (`EXPLAINER_ARRAYS`): TreeSHAP's solved tables
        are read as saved when the file has them in this runtime's layout, else solved."""
        paths = None
        if arrays["path_value"].size:
            n = len(EXPLAINER_SOLVED_PREFIX)
            solved = {k[n:]: v for k, v in arrays.items() if k.startswith(EXPLAINER_SOLVED_PREFIX)}
            usable = can_restore(solved, arrays["path_value"].size)
            paths = TreePaths(
                **{k: arrays[f"path_{k}"] for k in _PATH_KEYS},
                tree=None if usable else _tree_of_paths(arrays),
                solved=solved if usable else None,
            )
        return ShapTables(
            arrays["linear_coef"], arrays["linear_mean"], float(arrays["base_value"]), paths
        )

    def solved_arrays(self) -> dict[str, np.ndarray]:
        """TreeSHAP's solved tables under their file keys (`EXPLAINER_SOLVED_PREFIX`),
        for the exporter to save beside the paths; none for a linear model."""
        if self.paths is None:
            return {}
        solved = self.paths.solved_arrays()
        return {EXPLAINER_SOLVED_PREFIX + k: v for k, v in solved.items()}

    def shap_encoded(self, Z: np.ndarray) -> np.ndarray:
        """SHAP values per encoded column [rows, columns]."""
        phi = self.coef * (Z - self.mean)
        if self.paths is not None:
            phi = phi + tree_shap(self.paths, Z)
        return np.asarray(phi)


def _tree_of_paths(arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The tree of each path, from the node tables the file also holds.

    The exporter writes paths tree by tree, one per leaf (`paths_from_nodes`); a file
    without node tables, or whose counts disagree, gets None (per-path tables only)."""
    left, start = arrays.get("node_left"), arrays.get("tree_start")
    if left is None or start is None or left.size == 0:
        return None
    bounds = np.append(np.asarray(start, dtype=np.int64), left.size)
    leaves = np.add.reduceat(left < 0, bounds[:-1]) if bounds.size > 1 else np.zeros(0, int)
    if int(leaves.sum()) != arrays["path_value"].size or np.any(np.diff(bounds) <= 0):
        return None
    return np.repeat(np.arange(leaves.size), leaves)


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
        missing = [k for k in EXPLAINER_ARRAYS if k not in arrays]
        if missing:
            raise BundleError(
                f"{spec.file} lacks the arrays {', '.join(missing)}: it was not written by "
                "the exporter; re-export the bundle."
            )
        self.layout = EncodedLayout.of(manifest.input)
        if list(arrays.get("encoded_names", [])) != self.layout.names:
            raise BundleError(
                f"{spec.file} was built for other encoded columns than the manifest's input "
                "schema; re-export the bundle."
            )
        self.raw_names = self.layout.raw_names
        self.n_columns = self.layout.width
        self._to_raw = self.layout.to_raw()
        try:
            self.tables = ShapTables.of(arrays)
        except (KeyError, ValueError, TypeError) as exc:
            raise BundleError(
                f"{spec.file} holds solved tables that do not fit together ({exc}); "
                "re-export the bundle."
            ) from exc
        self.base = self.tables.base

    @property
    def paths(self) -> TreePaths | None:
        return self.tables.paths

    def encode(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The ONNX graph's encoded features (float32 values held as float64)."""
        return np.asarray(self.layout.encode(numeric, categorical), dtype=np.float64)

    def shap_encoded(self, Z: np.ndarray) -> np.ndarray:
        """SHAP values per encoded column [rows, columns]."""
        return self.tables.shap_encoded(Z)

    def derived_values(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Each derived feature's value [rows, derived features], as the graph computes it
        (before any log1p): what explain reports beside its SHAP value."""
        if not self.layout.derived:
            return np.zeros((numeric.shape[0], 0))
        start = self.layout.number_width - len(self.layout.derived)
        return self.layout.numbers(numeric, categorical)[:, start:]

    def shap(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """SHAP values per raw feature [rows, features]; rows sum to output - base."""
        return np.asarray(self.shap_encoded(self.encode(numeric, categorical)) @ self._to_raw)

    def shap_and_derived(
        self, numeric: np.ndarray, categorical: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`shap` and `derived_values` from one computation of the number block (the
        derived features' formulas are most of the encoding's cost on small requests)."""
        layout = self.layout
        numbers = layout.numbers(numeric, categorical) if layout.number_width else None
        Z = np.asarray(layout.encode(numeric, categorical, numbers), dtype=np.float64)
        phi = np.asarray(self.shap_encoded(Z) @ self._to_raw)
        if numbers is None or not layout.derived:
            return phi, np.zeros((numeric.shape[0], 0))
        return phi, numbers[:, layout.number_width - len(layout.derived) :]

    def explained(self, raw: np.ndarray) -> np.ndarray:
        """The ONNX raw output in the explained scale."""
        if self.spec.scale == "log_odds":
            p = np.clip(raw, 1e-12, 1 - 1e-12)
            return np.asarray(np.log(p) - np.log1p(-p))
        return raw
