"""TreeSHAP's recurrences and its per-path route (`_Group`), for `estate.runtime.treeshap`.

Lundberg's EXTEND / UNWOUND-SUM recurrences give every path element's Shapley weight
(`_element_shap`); `_Group` holds the paths of one length, with a table of every 0/1
pattern solved at load for short paths and the recurrences per request for longer ones.
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Rows per chunk x path elements kept in memory at once (bounds peak memory per call).
_CHUNK_ELEMENTS = 600_000
#: Paths up to this many unique features get a precomputed table of all 0/1 patterns ...
_TABLE_DEPTH = 8
#: ... as long as a group's table stays below this many float32 values (32 MB): up to
#: 800 depth-6 XGBoost trees (≈ 30k paths of 6 features x 64 patterns x 6).
_TABLE_ELEMENTS = 8_000_000


class _PathArrays(Protocol):
    """What the table builders read of `estate.runtime.treeshap.TreePaths` (its arrays),
    named structurally so that this module need not import the one that uses it."""

    @property
    def feature(self) -> np.ndarray: ...
    @property
    def lower(self) -> np.ndarray: ...
    @property
    def upper(self) -> np.ndarray: ...
    @property
    def zero(self) -> np.ndarray: ...
    @property
    def missing(self) -> np.ndarray: ...
    @property
    def leq(self) -> np.ndarray: ...
    @property
    def value(self) -> np.ndarray: ...
    @property
    def length(self) -> np.ndarray: ...


def _element_shap(one: np.ndarray, z: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Each path element's SHAP contribution [n, p, D] from one fractions [n, p, D].

    Lundberg's EXTEND then UNWOUND-SUM, vectorised over rows and paths: one loop step per
    path position instead of one Python call per node.
    """
    n, p, D = one.shape
    # EXTEND the permutation weights over the root element then each unique feature.
    pw = np.zeros((n, p, D + 1))
    pw[:, :, 0] = 1.0
    i = np.arange(D + 1)
    for d in range(1, D + 1):
        keep = (d - i[: d + 1]) / (d + 1)  # weight of staying out of the subset
        grow = i[: d + 1] / (d + 1)  # weight of joining it
        old = pw[:, :, : d + 1]
        new = z[None, :, d - 1, None] * old * keep
        new[:, :, 1:] += one[:, :, d - 1, None] * old[:, :, :-1] * grow[1:]
        pw[:, :, : d + 1] = new
    # UNWOUND-SUM: each element's Shapley weight with that element removed again. For a
    # satisfied element (o = 1) it is a recurrence per element; for an unsatisfied one
    # (o = 0) it is Σ_k pw[k] (D+1)/(D-k) / z, the same sum for every element of the path.
    inv_z = 1.0 / np.where(z > 0, z, 1.0)  # z = 0 makes (o - z) x weight vanish anyway
    off = sum(pw[:, :, k] * ((D + 1) / (D - k)) for k in range(D))
    nxt = np.broadcast_to(pw[:, :, D, None], (n, p, D)).copy()
    total_on = np.zeros((n, p, D))
    for k in range(D - 1, -1, -1):
        total_on += nxt * ((D + 1) / (k + 1))
        nxt *= z * ((D - k) / (k + 1))
        np.subtract(pw[:, :, k, None], nxt, out=nxt)
    total = np.where(one != 0, total_on, np.asarray(off)[:, :, None] * inv_z)
    return np.asarray(total * (one - z) * value[:, None])


@dataclass(frozen=True)
class _Group:
    """Paths with the same number of unique features, and how to sum them per column.

    One fractions are 0 or 1, so a path's contributions depend only on which of its D
    elements a row satisfies: for short paths every one of the 2^D patterns is solved
    once at load (``table``, [paths, 2^D, D]) and serving is a lookup. Longer paths
    (deep random-forest trees) run the recurrences per request.
    """

    depth: int
    feature: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    zero: np.ndarray
    missing: np.ndarray
    leq: np.ndarray
    rule: str
    value: np.ndarray
    order: np.ndarray
    columns: np.ndarray
    starts: np.ndarray
    table: np.ndarray | None
    gather: np.ndarray | None
    sorted_path: np.ndarray

    @staticmethod
    def make(paths: _PathArrays, idx: np.ndarray, depth: int) -> _Group:
        feature = paths.feature[idx, :depth]
        flat = feature.ravel()
        order = np.argsort(flat, kind="stable")
        columns, starts = np.unique(flat[order], return_index=True)
        leq = paths.leq[idx, None]
        rule = "leq" if leq.all() else ("lt" if not leq.any() else "mixed")
        zero, value = paths.zero[idx, :depth], paths.value[idx]
        sorted_path, sorted_elem = np.divmod(order, max(depth, 1))
        table = gather = None
        if 0 < depth <= _TABLE_DEPTH and idx.size * (2**depth) * depth <= _TABLE_ELEMENTS:
            bits = (np.arange(2**depth)[:, None] >> np.arange(depth)) & 1  # [2^D, D]
            one = np.broadcast_to(bits[:, None, :], (2**depth, idx.size, depth))
            solved = _element_shap(one.astype(np.float64), zero, value)  # [2^D, p, D]
            # [p][pattern][d]; float32 is ~1e-7 relative, below the ONNX graph's float32
            table = np.ascontiguousarray(solved.transpose(1, 0, 2), dtype=np.float32).ravel()
            gather = sorted_path * (2**depth * depth) + sorted_elem  # pattern 0's position
        return _Group(
            depth=depth,
            feature=feature,
            # float32 like the ONNX graph's features; thresholds are float32 already
            lower=paths.lower[idx, :depth].astype(np.float32),
            upper=paths.upper[idx, :depth].astype(np.float32),
            zero=zero,
            missing=paths.missing[idx, :depth],
            leq=leq,
            rule=rule,
            value=value,
            order=order,
            columns=columns,
            starts=starts,
            table=table,
            gather=gather,
            sorted_path=sorted_path,
        )

    def inside(self, X: np.ndarray) -> np.ndarray:
        """Does each row satisfy each path element? bool [rows, paths, depth]."""
        x = np.take(X.astype(np.float32, copy=False), self.feature, axis=1)
        if self.rule == "lt":
            hit = (x >= self.lower) & (x < self.upper)
        elif self.rule == "leq":
            hit = (x > self.lower) & (x <= self.upper)
        else:
            hit = np.where(
                self.leq, (x > self.lower) & (x <= self.upper), (x >= self.lower) & (x < self.upper)
            )
        if np.isnan(X).any():
            hit = np.where(np.isnan(x), self.missing, hit)
        return np.asarray(hit)

    def ones(self, X: np.ndarray) -> np.ndarray:
        """One fractions [rows, paths, depth] as floats."""
        return self.inside(X).astype(np.float64)

    def shap(self, X: np.ndarray, phi: np.ndarray) -> None:
        """Add this group's SHAP values for rows X to phi [rows, columns]."""
        D = self.depth
        if D == 0:  # a tree that is a single leaf only shifts the base value
            return
        hit = self.inside(X)
        n, p = hit.shape[0], hit.shape[1]
        if self.table is not None and self.gather is not None:
            # Which elements a row satisfies, as a D-bit number per path, then one lookup
            # per element, already in column order.
            pattern = hit[:, :, 0].astype(np.intp)  # [n, p]: bit d = element d satisfied
            for d in range(1, D):
                pattern |= hit[:, :, d].astype(np.intp) << d
            pattern *= D
            where = np.take(pattern, self.sorted_path, axis=1) + self.gather
            ordered = np.take(self.table, where)
        else:
            contrib = _element_shap(hit.astype(np.float64), self.zero, self.value)
            ordered = np.take(contrib.reshape(n, p * D), self.order, axis=1)
        phi[:, self.columns] += np.add.reduceat(ordered, self.starts, axis=1, dtype=np.float64)
