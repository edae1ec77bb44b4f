"""TreeSHAP's fastest route, for `estate.runtime.treeshap`: blocks of paths solved whole.

`_blocks` cuts the paths into blocks (a whole shallow tree, a subtree of a deeper one)
of few distinct conditions; `_Cells` solves each block's SHAP values for every outcome of
its conditions at load, so a request costs one comparison per condition and one lookup
per (block, feature). numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from estate.runtime._treeshap_groups import _CHUNK_ELEMENTS, _element_shap, _PathArrays

#: Blocks of paths (a whole shallow tree, a subtree of a deeper one) sharing at most this
#: many distinct conditions are solved whole at load (`_Cells`, at most 8: one outcome
#: byte); 0 serves every path from per-path tables. 7 holds any depth-3 tree and four
#: leaves of a depth-5/6 tree; 8 doubles the tables and their load time for little.
_CELL_CONDITIONS = 7
#: Multiplier that packs eight 0/1 bytes of a uint64 into its top byte (bit j = byte j).
_GATHER_BITS = np.uint64(0x0102040810204080)


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
    def make(paths: _PathArrays, tree: np.ndarray) -> tuple[_Cells | None, np.ndarray]:
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


def _blocks(paths: _PathArrays, tree: np.ndarray) -> np.ndarray:
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
