"""Exact path-dependent TreeSHAP over root-to-leaf paths, vectorised with numpy.

GPUTreeShap's decomposition (Mitchell et al., 2022): a tree ensemble's prediction is the
sum, over every leaf, of ``leaf value x [x satisfies the leaf's path]``, and SHAP values
are additive over those terms. Each path reduces to its *unique* features, each with an
interval (the intersection of its splits on the path), a zero fraction (the share of
training cover that follows the path's edges on that feature) and a one fraction (1 when
the row lies in the interval, else 0). Lundberg's EXTEND / UNWOUND-SUM recurrences then
give every element's Shapley weight. Paths are grouped by length so that each group is a
dense ``[rows, paths, features]`` array and the whole computation is a few dozen numpy
operations per group, whatever the number of trees: no per-node Python recursion.

Serving has three routes, fastest first, all solved at load so a request only looks up:
*blocks* (`_Cells`): consecutive paths sharing at most `_CELL_CONDITIONS` (feature,
threshold) conditions - a whole depth-3 tree, a four-leaf subtree of a deeper one - get
one table row per outcome of their conditions; *per-path pattern tables* (`_Group`) for
paths of up to `_TABLE_DEPTH` features; the *recurrences* per request for longer paths
(deep random forests). Tables hold float32 (6e-8 relative, below the ONNX graph's own
float32 arithmetic); sums are float64.

The solved tables are saved with the paths (`TreePaths.solved_arrays`, at export) and
read back whole (``TreePaths(..., solved=...)``, at load): loading is then a few array
views instead of solving; paths without them (older files) are solved at load.

The routes' tables live in `estate.runtime._treeshap_cells` (blocks) and
`estate.runtime._treeshap_groups` (per-path tables, the recurrences). These modules import
numpy only; `paths_from_nodes` runs at export, `tree_shap` at serve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

import numpy as np

from estate.runtime._treeshap_cells import _blocks, _Cells
from estate.runtime._treeshap_groups import _CHUNK_ELEMENTS, _Group

#: Rows x (tree, threshold) entries per chunk of the cell lookup (stays in cache).
_CELL_CHUNK = 200_000
#: Layout of `TreePaths.solved_arrays`: bump it when a `_Cells` or `_Group` field changes
#: meaning, so a reader of another layout solves the tables again instead of misreading
#: them. (The tables' tuning constants need no bump: tables solved under other ones are as
#: exact, they only split the paths between the routes differently.)
SOLVED_FORMAT: Final = 1


@dataclass(frozen=True)
class TreePaths:
    """Every root-to-leaf path of an ensemble, elements padded to the longest path.

    ``feature[p, d]`` is the encoded column of the path's d-th unique feature (-1 = padding);
    a row satisfies the element when ``lower < x <= upper`` (``leq``, scikit-learn's rule)
    or ``lower <= x < upper`` (XGBoost's), or when x is NaN and ``missing`` is set.
    ``value`` is the leaf value already multiplied by its model's weight in the ensemble.
    """

    feature: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    zero: np.ndarray
    missing: np.ndarray
    leq: np.ndarray
    value: np.ndarray
    length: np.ndarray
    #: Tree of each path (paths of one tree are contiguous), when known: small trees are
    #: then served from whole-tree cell tables (`_Cells`).
    tree: np.ndarray | None = None
    _groups: list[_Group] = field(default_factory=list, init=False, compare=False, repr=False)
    _covered: list[_Group] = field(default_factory=list, init=False, compare=False, repr=False)
    _covered_mask: list[np.ndarray] = field(
        default_factory=list, init=False, compare=False, repr=False
    )
    _cells: list[_Cells] = field(default_factory=list, init=False, compare=False, repr=False)
    #: Tables solved earlier (`solved_arrays`, keys without the file's prefix): used as
    #: they are when `can_restore` says so; otherwise the tables are solved here.
    solved: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.solved is not None and can_restore(self.solved, self.length.size):
            self._restore(self.solved)
            return
        covered = np.zeros(self.length.size, dtype=bool)
        if self.tree is not None and self.tree.size == self.length.size:
            cells, covered = _Cells.make(self, _blocks(self, np.asarray(self.tree, np.int64)))
            if cells is not None:
                self._cells.append(cells)
        self._covered_mask.append(covered)
        for d in np.unique(self.length[~covered]):
            idx = np.flatnonzero((self.length == d) & ~covered)
            self._groups.append(_Group.make(self, idx, int(d)))

    def solved_arrays(self) -> dict[str, np.ndarray]:
        """The solved tables as plain numpy arrays (no objects: savable without pickle),
        so that a reader gets them back with ``TreePaths(..., solved=...)`` unsolved."""
        out: dict[str, np.ndarray] = {
            "format": np.array(SOLVED_FORMAT),
            "covered": self._covered_mask[0],
            "cells": np.array(len(self._cells)),
            "groups": np.array(len(self._groups)),
        }
        for i, cells in enumerate(self._cells):
            out.update(_to_arrays(cells, f"cells{i}_"))
        for i, group in enumerate(self._groups):
            out.update(_to_arrays(group, f"group{i}_"))
        return out

    def _restore(self, solved: Mapping[str, np.ndarray]) -> None:
        self._covered_mask.append(np.asarray(solved["covered"], dtype=bool))
        for i in range(int(solved["cells"])):
            self._cells.append(_from_arrays(_Cells, solved, f"cells{i}_"))
        for i in range(int(solved["groups"])):
            self._groups.append(_from_arrays(_Group, solved, f"group{i}_"))

    def covered_groups(self) -> list[_Group]:
        """Per-path groups of the trees solved whole: built on first use (rows with NaN,
        `predict`), since serving never needs them otherwise."""
        covered = self._covered_mask[0]
        if not self._covered and covered.any():
            for d in np.unique(self.length[covered]):
                idx = np.flatnonzero((self.length == d) & covered)
                self._covered.append(_Group.make(self, idx, int(d)))
        return self._covered

    def expected_value(self) -> float:
        """E[f] under the training cover: Σ value x Π zero fractions (padding counts as 1)."""
        zero = np.where(self.feature >= 0, self.zero, 1.0)
        return float(np.sum(self.value * np.prod(zero, axis=1)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Σ leaf values of the paths each row satisfies: the ensemble's own output."""
        out = np.zeros(X.shape[0])
        for g in [*self._groups, *self.covered_groups()]:
            out += (g.ones(X).prod(axis=2) * g.value).sum(axis=1)
        return out


_T = TypeVar("_T", "_Cells", "_Group")


def can_restore(solved: Mapping[str, np.ndarray], n_paths: int) -> bool:
    """Are these saved tables of this module's layout, for this many paths?"""
    fmt, covered = solved.get("format"), solved.get("covered")
    return (
        fmt is not None
        and fmt.shape == ()
        and int(fmt) == SOLVED_FORMAT
        and covered is not None
        and covered.shape == (n_paths,)
    )


def _to_arrays(table: _Cells | _Group, prefix: str) -> dict[str, np.ndarray]:
    """A table's fields as arrays (ints and words as 0-d arrays; None left out)."""
    return {
        prefix + f.name: np.asarray(getattr(table, f.name))
        for f in fields(table)
        if getattr(table, f.name) is not None
    }


def _from_arrays(kind: type[_T], arrays: Mapping[str, np.ndarray], prefix: str) -> _T:
    """The table `_to_arrays` saved; a KeyError names a field the file lacks."""
    values: dict[str, Any] = {}
    for f in fields(kind):
        value = arrays.get(prefix + f.name)
        if value is None and "None" not in str(f.type):
            raise KeyError(prefix + f.name)
        values[f.name] = value
        if f.type == "int" and value is not None:
            values[f.name] = int(value)
        elif f.type == "str":
            values[f.name] = str(value)
    return kind(**values)


def tree_shap(paths: TreePaths, X: np.ndarray) -> np.ndarray:
    """SHAP values [rows, columns] of the ensemble for encoded rows X (NaN = missing).

    X is compared in float32, as the ONNX graph feeds its trees. Each row's values sum
    to its prediction minus `TreePaths.expected_value`.
    """
    X = np.asarray(X, dtype=np.float64)
    phi = np.zeros(X.shape)
    groups = paths._groups
    if paths._cells:
        missing = np.isnan(X).any(axis=1)
        clean = np.flatnonzero(~missing) if missing.any() else slice(None)
        X32 = X[clean].astype(np.float32)
        part = np.zeros(X32.shape)
        for cells in paths._cells:
            step = max(1, _CELL_CHUNK // max(1, cells.entry_cond.size))
            for start in range(0, X32.shape[0], step):
                cells.shap(X32[start : start + step], part[start : start + step])
        phi[clean] += part
        if missing.any():  # the cell tables cannot say where NaN goes: per-path route
            rows = np.flatnonzero(missing)
            phi[rows] += _paths_shap(paths.covered_groups(), X[rows])
    return phi + _paths_shap(groups, X) if groups else phi


def _paths_shap(groups: list[_Group], X: np.ndarray) -> np.ndarray:
    """SHAP values of the per-path groups, in row chunks that bound memory."""
    phi = np.zeros(X.shape)
    X = X.astype(np.float32)  # as the ONNX graph feeds its trees; converted once
    for g in groups:
        step = max(1, _CHUNK_ELEMENTS // max(1, g.value.size * (g.depth + 1)))
        for start in range(0, X.shape[0], step):
            g.shap(X[start : start + step], phi[start : start + step])
    return phi


def paths_from_nodes(
    *,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    default_left: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tree_start: np.ndarray,
    tree_weight: np.ndarray,
    tree_leq: np.ndarray,
) -> TreePaths:
    """Decompose node tables (children indexed within their tree, -1 at leaves) into paths.

    Runs once at export. A feature met twice on a path keeps one element: the bounds
    intersect and the zero fractions multiply, as the path-dependent algorithm requires.
    """
    rows: list[tuple[list[int], list[float], list[float], list[float], list[bool], bool, float]]
    rows = []
    tree_of: list[int] = []
    starts = [*tree_start.tolist(), len(feature)]
    for t in range(len(starts) - 1):
        base = int(starts[t])
        leq = bool(tree_leq[t])
        weight = float(tree_weight[t])
        stack: list[tuple[int, dict[int, list[float]]]] = [(0, {})]
        while stack:
            node, elems = stack.pop()
            n = base + node
            if left[n] < 0:
                feats = sorted(elems)
                tree_of.append(t)
                rows.append(
                    (
                        feats,
                        [elems[f][0] for f in feats],
                        [elems[f][1] for f in feats],
                        [elems[f][2] for f in feats],
                        [bool(elems[f][3]) for f in feats],
                        leq,
                        weight * float(value[n]),
                    )
                )
                continue
            f = int(feature[n])
            thr = float(np.float32(threshold[n]))
            for child, is_left in ((int(left[n]), True), (int(right[n]), False)):
                lo, hi, z, miss = elems.get(f, [-np.inf, np.inf, 1.0, 1.0])
                if is_left:
                    hi = min(hi, thr)
                else:
                    lo = max(lo, thr)
                share = float(cover[base + child]) / float(cover[n])
                follows = bool(default_left[n]) == is_left
                nested = dict(elems)
                nested[f] = [lo, hi, z * share, float(miss and follows)]
                stack.append((child, nested))
    width = max((len(r[0]) for r in rows), default=0)
    P = len(rows)
    out_feature = np.full((P, width), -1, dtype=np.int32)
    lower = np.full((P, width), -np.inf)
    upper = np.full((P, width), np.inf)
    zero = np.ones((P, width))
    missing = np.zeros((P, width), dtype=bool)
    for p, (feats, lo_, hi_, z_, miss_, _, _) in enumerate(rows):
        d = len(feats)
        out_feature[p, :d] = feats
        lower[p, :d] = lo_
        upper[p, :d] = hi_
        zero[p, :d] = z_
        missing[p, :d] = miss_
    return TreePaths(
        feature=out_feature,
        lower=lower,
        upper=upper,
        zero=zero,
        missing=missing,
        leq=np.array([r[5] for r in rows], dtype=bool),
        value=np.array([r[6] for r in rows], dtype=np.float64),
        length=np.array([len(r[0]) for r in rows], dtype=np.int32),
        tree=np.array(tree_of, dtype=np.int64),
    )
