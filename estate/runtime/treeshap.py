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

This module imports numpy only; `paths_from_nodes` runs at export, `tree_shap` at serve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

import numpy as np

#: Rows per chunk x path elements kept in memory at once (bounds peak memory per call).
_CHUNK_ELEMENTS = 600_000
#: Paths up to this many unique features get a precomputed table of all 0/1 patterns ...
_TABLE_DEPTH = 8
#: ... as long as a group's table stays below this many float32 values (32 MB): up to
#: 800 depth-6 XGBoost trees (≈ 30k paths of 6 features x 64 patterns x 6).
_TABLE_ELEMENTS = 8_000_000
#: Blocks of paths (a whole shallow tree, a subtree of a deeper one) sharing at most this
#: many distinct conditions are solved whole at load (`_Cells`, at most 8: one outcome
#: byte); 0 serves every path from per-path tables. 7 holds any depth-3 tree and four
#: leaves of a depth-5/6 tree; 8 doubles the tables and their load time for little.
_CELL_CONDITIONS = 7
#: Rows x (tree, threshold) entries per chunk of the cell lookup (stays in cache).
_CELL_CHUNK = 200_000
#: Multiplier that packs eight 0/1 bytes of a uint64 into its top byte (bit j = byte j).
_GATHER_BITS = np.uint64(0x0102040810204080)
#: Layout of `TreePaths.solved_arrays`: bump it when a `_Cells` or `_Group` field changes
#: meaning, so a reader of another layout solves the tables again instead of misreading
#: them. (The tuning constants above need no bump: tables solved under other ones are as
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


@dataclass(frozen=True)
class _Cells:
    """Blocks of paths solved whole: a SHAP table per block over its conditions' outcomes.

    The SHAP values of a set of paths (a "block": a whole shallow tree, or a subtree of
    a deeper one, see `_blocks`; called "tree" below) depend on a row only through which
    of the block's own (feature, threshold) conditions the row passes. A block of at most
    8 distinct conditions has at most 256 outcome bytes, each solved once at load.
    Serving compares each distinct condition of the ensemble once per row, packs each
    block's bits into one byte and gathers one value per (block, feature): on the Ames
    blend about a fifth of the per-path tables' lookups. Rows holding NaN (the encoder
    imputes, so only direct callers) take the per-path route, which knows each split's
    default direction; bytes no finite row can produce are never read.
    """

    cond_feature: np.ndarray  # [C + 1] encoded column of each distinct condition
    cond_value: np.ndarray  # [C + 1] float32 threshold; the last one is NaN (never passed)
    cond_leq: np.ndarray  # [C + 1] True: passed when x > t (scikit-learn), else x >= t
    rule: str
    entry_cond: np.ndarray  # [T * 8] each tree's conditions in bit order, padded with C
    n_trees: int
    width: np.ndarray  # [T] features per tree
    out_tree: np.ndarray  # [E] per (tree, feature), in column order: the tree
    out_base: np.ndarray  # [E] position of that (tree, feature)'s value for outcome 0
    columns: np.ndarray
    starts: np.ndarray
    table: np.ndarray  # float32, flat [tree][outcome byte][feature]

    @staticmethod
    def make(paths: TreePaths, tree: np.ndarray) -> tuple[_Cells | None, np.ndarray]:
        """Tables of every block (`tree` = block id per path, contiguous) of at most
        `_CELL_CONDITIONS` conditions, and a mask of the paths they cover."""
        length = paths.length
        nothing = np.zeros(length.size, dtype=bool)
        real = np.arange(paths.feature.shape[1]) < length[:, None]
        e_path, e_pos = np.nonzero(real)  # path elements, path-major
        if e_path.size == 0:
            return None, nothing
        e_tree = tree[e_path]
        e_feat = paths.feature[e_path, e_pos].astype(np.int64)
        e_lo = paths.lower[e_path, e_pos].astype(np.float32)
        e_hi = paths.upper[e_path, e_pos].astype(np.float32)
        # A finite bound of an element is one of its tree's conditions on that feature.
        values = np.unique(np.concatenate([e_lo, e_hi])[np.isfinite(np.r_[e_lo, e_hi])])
        n_feat, V = int(paths.feature.max()) + 1, max(1, values.size)

        def key(v: np.ndarray) -> np.ndarray:
            rank = np.searchsorted(values, np.where(np.isfinite(v), v, 0))
            return np.where(np.isfinite(v), (e_tree * n_feat + e_feat) * V + rank, -1)

        lo_key, hi_key = key(e_lo), key(e_hi)
        ent = np.unique(np.r_[lo_key, hi_key])
        ent = ent[ent >= 0]  # sorted by (tree, feature, threshold)
        n_all = int(tree.max()) + 1
        per_tree = np.bincount(ent // V // n_feat, minlength=n_all)
        chosen = (per_tree > 0) & (per_tree <= min(_CELL_CONDITIONS, 8))
        if not chosen.any():
            return None, nothing
        ent = ent[chosen[ent // V // n_feat]]
        renumber = np.cumsum(chosen) - 1
        T = int(chosen.sum())
        ent_tree = renumber[ent // V // n_feat]
        ent_bit = np.arange(ent.size) - np.searchsorted(ent_tree, ent_tree)
        n_out = 1 << per_tree[chosen]  # outcome bytes per tree
        pair = np.unique(ent // V)  # (tree, feature), sorted
        pair_tree = renumber[pair // n_feat]
        slot = np.arange(pair.size) - np.searchsorted(pair_tree, pair_tree)
        width = np.bincount(pair_tree, minlength=T)
        tree_base = np.r_[0, np.cumsum(n_out * width)[:-1]]
        pair_base = tree_base[pair_tree] + slot
        # Conditions: distinct (feature, threshold, rule); then the padded per-tree bytes.
        leq_tree = np.zeros(n_all, dtype=bool)
        leq_tree[tree] = paths.leq
        ent_leq = leq_tree[ent // V // n_feat]
        cond_key = ((ent // V % n_feat) * V + ent % V) * 2 + ent_leq
        conds, ent_cond = np.unique(cond_key, return_inverse=True)
        entry_cond = np.full((T, 8), conds.size, dtype=np.intp)
        entry_cond[ent_tree, ent_bit] = ent_cond
        order = np.argsort(pair % n_feat, kind="stable")
        columns, starts = np.unique((pair % n_feat)[order], return_index=True)
        # Fill: every covered path's element SHAP for every outcome byte of its tree.
        table = np.zeros(int(tree_base[-1] + n_out[-1] * width[-1]))
        covered = chosen[tree] & (length > 0)
        lo_bit = np.where(
            lo_key >= 0, ent_bit[np.searchsorted(ent, lo_key).clip(0, ent.size - 1)], -1
        )
        hi_bit = np.where(
            hi_key >= 0, ent_bit[np.searchsorted(ent, hi_key).clip(0, ent.size - 1)], -1
        )
        e_slot_base = pair_base[
            np.searchsorted(pair, e_tree * n_feat + e_feat).clip(0, pair.size - 1)
        ]
        # Bounds at ±inf point at bit 8 (always set) and bit 9 (never set) of the outcome.
        lo_bit = np.where(lo_key >= 0, lo_bit, 8)
        hi_bit = np.where(hi_key >= 0, hi_bit, 9)
        elem_start = np.r_[0, np.cumsum(length)[:-1]]
        path_k = per_tree[tree]  # conditions of each path's tree
        path_width = np.zeros(n_all, dtype=np.int64)
        path_width[chosen] = width
        for D in np.unique(length[covered]).tolist():
            idx = np.flatnonzero(covered & (length == D))
            el = elem_start[idx, None] + np.arange(D)  # [p, D] element numbers
            bits = (np.arange(2**D)[:, None] >> np.arange(D)) & 1
            one = np.broadcast_to(bits[:, None, :], (2**D, idx.size, D)).astype(np.float64)
            solved = _element_shap(one, paths.zero[idx, :D], paths.value[idx]).ravel()
            pair = (lo_bit * 10 + hi_bit)[el]  # [p, D]: which (lower, upper) bits
            for K in np.unique(path_k[idx]).tolist():
                S = 1 << K
                bit = (((np.arange(S) | 256)[None, :] >> np.arange(10)[:, None]) & 1).astype(
                    np.uint8
                )  # [10, S]: is bit b set in outcome s (bit 8 always, bit 9 never)
                satisfied = (bit[:, None, :] & (1 - bit[None, :, :])).reshape(100, S)
                group = np.flatnonzero(path_k[idx] == K)
                step = max(1, _CHUNK_ELEMENTS // (S * D))
                for a in range(0, group.size, step):
                    sel = group[a : a + step]  # paths (positions in idx) of this chunk
                    sat = satisfied[pair[sel]]  # [c, D, S]
                    pattern = sat[:, 0, :].astype(np.int32)
                    for d in range(1, D):
                        pattern |= sat[:, d, :].astype(np.int32) << d
                    source = (pattern * (idx.size * D) + (sel * D)[:, None])[:, :, None] + (
                        np.arange(D, dtype=np.int32)
                    )  # [c, S, D] into solved [2^D, p, D]
                    w = path_width[tree[idx[sel]]].astype(np.int32)
                    target = (
                        e_slot_base[el[sel]][:, None, :].astype(np.int32)
                        + (np.arange(S, dtype=np.int32)[None, :] * w[:, None])[:, :, None]
                    )
                    table += np.bincount(
                        target.ravel(), np.take(solved, source).ravel(), minlength=table.size
                    )
        cond_leq = np.r_[(conds % 2).astype(bool), False]
        rule = "leq" if cond_leq[:-1].all() else ("lt" if not cond_leq.any() else "mixed")
        return (
            _Cells(
                cond_feature=np.r_[conds // 2 // V, 0].astype(np.intp),
                cond_value=np.r_[values[conds // 2 % V], np.nan].astype(np.float32),
                cond_leq=cond_leq,
                rule=rule,
                entry_cond=entry_cond.ravel(),
                n_trees=T,
                width=width.astype(np.intp),
                out_tree=pair_tree[order].astype(np.intp),
                out_base=pair_base[order].astype(np.intp),
                columns=columns.astype(np.intp),
                starts=starts.astype(np.intp),
                table=table.astype(np.float32),  # ~1e-7 relative: far below the ONNX float32
            ),
            covered,
        )

    def shap(self, X: np.ndarray, phi: np.ndarray) -> None:
        """Add the trees' SHAP values for float32 rows X (no NaN) to phi [rows, columns]."""
        x = np.take(X, self.cond_feature, axis=1)
        if self.rule == "lt":
            passed = x >= self.cond_value
        elif self.rule == "leq":
            passed = x > self.cond_value
        else:
            passed = np.where(self.cond_leq, x > self.cond_value, x >= self.cond_value)
        # Eight 0/1 bytes per tree read as one little-endian uint64; the multiply gathers
        # byte j's bit into bit 56 + j (no carries), so the top byte is the outcome byte.
        bits = np.take(passed, self.entry_cond, axis=1).view("<u8")  # [n, T]
        byte = (bits * _GATHER_BITS) >> np.uint64(56)
        offset = byte.astype(np.intp) * self.width  # [n, T]: start of the outcome's row
        where = np.take(offset, self.out_tree, axis=1) + self.out_base
        values = np.take(self.table, where)
        phi[:, self.columns] += np.add.reduceat(values, self.starts, axis=1, dtype=np.float64)


def _blocks(paths: TreePaths, tree: np.ndarray) -> np.ndarray:
    """Consecutive paths of one tree merged while they share at most `_CELL_CONDITIONS`
    distinct (feature, threshold) conditions: a whole depth-3 tree, four leaves of a
    depth-5 or depth-6 tree. Paths are in depth-first order, so a block is a subtree."""
    real = np.arange(paths.feature.shape[1]) < paths.length[:, None]
    feat = np.where(real, paths.feature, -1).tolist()
    bounds = [
        [
            (f, b)
            for f, lo, hi in zip(fs, los, his, strict=True)
            if f >= 0
            for b in (lo, hi)
            if math.isfinite(b)
        ]
        for fs, los, his in zip(
            feat,
            paths.lower.astype(np.float32).tolist(),
            paths.upper.astype(np.float32).tolist(),
            strict=True,
        )
    ]
    block = np.empty(tree.size, dtype=np.int64)
    b, current = -1, -1
    now: set[tuple[int, float]] = set()
    limit = min(_CELL_CONDITIONS, 8)
    for p, (t, conds) in enumerate(zip(tree.tolist(), bounds, strict=True)):
        merged = now.union(conds)
        if t != current or len(merged) > limit:
            b, current, merged = b + 1, t, set(conds)
        now = merged
        block[p] = b
    return block


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
