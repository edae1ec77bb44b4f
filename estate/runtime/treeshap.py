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

This module imports numpy only; `paths_from_nodes` runs at export, `tree_shap` at serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Rows per chunk x path elements kept in memory at once (bounds peak memory per call).
_CHUNK_ELEMENTS = 600_000
#: Paths up to this many unique features get a precomputed table of all 0/1 patterns ...
_TABLE_DEPTH = 8
#: ... as long as a group's table stays below this many float64 values (16 MB).
_TABLE_ELEMENTS = 2_000_000


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
    _groups: list[_Group] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for d in np.unique(self.length):
            idx = np.flatnonzero(self.length == d)
            self._groups.append(_Group.make(self, idx, int(d)))

    def expected_value(self) -> float:
        """E[f] under the training cover: Σ value x Π zero fractions (padding counts as 1)."""
        zero = np.where(self.feature >= 0, self.zero, 1.0)
        return float(np.sum(self.value * np.prod(zero, axis=1)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Σ leaf values of the paths each row satisfies: the ensemble's own output."""
        out = np.zeros(X.shape[0])
        for g in self._groups:
            out += (g.ones(X).prod(axis=2) * g.value).sum(axis=1)
        return out


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
    def make(paths: TreePaths, idx: np.ndarray, depth: int) -> _Group:
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
            table = np.ascontiguousarray(solved.transpose(1, 0, 2)).ravel()  # [p][pattern][d]
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
        x = X.astype(np.float32)[:, self.feature]
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
            where = pattern[:, self.sorted_path] * D + self.gather
            ordered = self.table[where]
        else:
            contrib = _element_shap(hit.astype(np.float64), self.zero, self.value)
            ordered = contrib.reshape(n, p * D)[:, self.order]
        phi[:, self.columns] += np.add.reduceat(ordered, self.starts, axis=1)


def tree_shap(paths: TreePaths, X: np.ndarray) -> np.ndarray:
    """SHAP values [rows, columns] of the ensemble for encoded rows X (NaN = missing).

    X is compared in float32, as the ONNX graph feeds its trees. Each row's values sum
    to its prediction minus `TreePaths.expected_value`.
    """
    X = np.asarray(X, dtype=np.float64)
    phi = np.zeros(X.shape)
    for g in paths._groups:
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
    )
