"""How raw rows become the graph's two inputs: one rule for predict, explain, batch and training.

Every source is first turned into columns, then `PackingRule` turns them into the ONNX
inputs (float64 numbers with NaN = missing; category texts, `estate.contract.bundle`)
and the warning flags, vectorised over the whole block. The rule (the bundle contract's
docstring states it for writers of other readers):

* a number that is null or absent stays NaN (the graph imputes the training median) and
  is flagged missing; one outside the training range is flagged ``outside``;
* a category's text is `category_text`: stripped, and an integral number is written
  without a fraction (``60``, ``60.0``, ``"60.0"`` → ``"60"``);
* a category that is null, NaN or blank -- or ``"NA"`` when training never saw ``"NA"``
  -- is missing: it becomes ``"NA"`` when ``"NA"`` is a training category (training
  reads an empty cell as ``"NA"``, so the model learnt what a missing value means), else
  the training mode;
* an absent feature (a key a JSON row does not have, a column a file does not have)
  becomes the training mode: nothing says it is empty;
* a filled category is flagged missing (warned "imputed", naming the value used); a
  text training never saw is kept and flagged unknown (it gets no one-hot column).

The sources are thin adapters: `estate.runtime.dict_packing.DictPacker` for validated
JSON instances (predict, explain, chat), `pack_table` for dictionary-encoded columns
(training's pandas encoder and `estate score`'s Arrow reader build those; this module
imports neither library).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, count, cycle
from operator import not_
from typing import Any

import numpy as np

from estate.contract.bundle import MISSING_CATEGORY, InputSchema, category_text

#: Batches up to this many rows build their category block row by row (one numpy
#: assignment), larger ones column by column.
_FEW_ROWS = 8
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Packed:
    """A packed batch: the two ONNX inputs, and which cells are worth a warning."""

    numeric: np.ndarray  # [rows, numeric features], NaN where missing
    categorical: np.ndarray  # [rows, categorical features], normalised text
    missing_numeric: np.ndarray  # bool, same shape as numeric
    outside: np.ndarray  # bool: outside the training range
    missing_category: np.ndarray  # bool, same shape as categorical
    unknown: np.ndarray  # bool: a category not seen in training


@dataclass(frozen=True)
class CategoryColumn:
    """One categorical feature of a table, dictionary-encoded: each distinct raw value
    once (None or NaN = null) and each row's index into them."""

    values: Sequence[object]
    codes: np.ndarray  # integer [rows]


def integral_text(text: str) -> str:
    """``"60.0"`` → ``"60"``: a text that spells an integral number, as a number column
    read by training would have written it (anything else unchanged)."""
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
    return text


class PackingRule:
    """The packing rule of one input schema (module docstring), ready to apply."""

    def __init__(self, schema: InputSchema) -> None:
        cats = schema.categorical
        self.known = [frozenset(c.categories) for c in cats]
        self.mode = np.array([c.impute for c in cats], dtype=object)
        self.na_known = np.array([MISSING_CATEGORY in k for k in self.known], dtype=bool)
        #: What a null or blank category becomes, per feature.
        self.null_fill = np.where(self.na_known, MISSING_CATEGORY, self.mode).astype(object)
        #: Per feature: the texts that are missing, and what each becomes.
        self._fills: list[dict[str | None, str]] = [
            {None: fill, "": fill} | ({} if na else {MISSING_CATEGORY: fill})
            for fill, na in zip(self.null_fill.tolist(), self.na_known.tolist(), strict=True)
        ]
        #: Per feature: the longest known text when every known text is one a raw JSON
        #: cell passes unchanged (ASCII, nothing to strip), else None. A column of such
        #: cells that are all known is then taken as it is (`DictPacker`).
        self.plain_width: list[int | None] = [
            max(map(len, k), default=0) if all(t.isascii() and t == t.strip() for t in k) else None
            for k in self.known
        ]
        #: Per feature: what an absent cell becomes (the mode, through the rule) and
        #: whether that text is unknown (never, for a mode training saw).
        absent = [self.cells(j, [mode]) for j, mode in enumerate(self.mode.tolist())]
        self.absent_text = [used[0] for used, _, _ in absent]
        self.absent_unknown = [bool(unknown[0]) for _, _, unknown in absent]
        self._min = np.array([f.min for f in schema.numeric], dtype=np.float64)
        self._max = np.array([f.max for f in schema.numeric], dtype=np.float64)

    def numbers(self, numeric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(missing, outside the training range) of a float64 block, NaN = missing."""
        missing = np.isnan(numeric)
        outside = (numeric < self._min) | (numeric > self._max)  # False for NaN
        return missing, outside

    def cell(self, j: int, text: str | None) -> tuple[str, bool, bool]:
        """(text used, missing, unknown) of one `category_text` value of feature `j`
        (None or "" = null): the rule, once."""
        if text in self.known[j]:
            return text, False, False  # type: ignore[return-value]  # None is never known
        fill = self._fills[j].get(text)
        if fill is not None:
            return fill, True, False
        text = integral_text(text)  # type: ignore[arg-type]  # None has a fill
        return text, False, text not in self.known[j]

    def cells(
        self, j: int, texts: Sequence[str | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(texts used, missing, unknown) of a few `category_text` values of feature `j`,
        one `cell` each: callers pass distinct values."""
        got = [self.cell(j, text) for text in texts]
        return (
            _objects([used for used, _, _ in got]),
            np.array([gone for _, gone, _ in got], dtype=bool),
            np.array([strange for _, _, strange in got], dtype=bool),
        )

    def column(
        self, j: int, texts: Sequence[str | None]
    ) -> tuple[Sequence[str] | np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(texts used, missing, unknown) of feature `j`'s column of `category_text`
        values; None for a mask means no cell is flagged.

        A column of known texts is kept as it is (one C-level membership pass); any other
        is dictionary-encoded, the rule runs once per distinct text (`cells`) and the rows
        take theirs by index, so a column of nulls costs about what a clean one does.
        """
        if self.known[j].issuperset(texts):
            return texts, None, None  # type: ignore[return-value]  # all known: all str
        distinct, codes = encode(texts)
        used, missing, unknown = self.cells(j, distinct)
        return used[codes], missing[codes], unknown[codes]

    def categories(
        self,
        texts: np.ndarray,
        absent: np.ndarray | None = None,
        columns: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(texts used, missing, unknown) of an object block of `category_text` values
        (None or "" = null); `absent` marks cells of features not sent; `columns` says
        which features the block's columns are (default: all, in schema order).

        Column by column (`column`), or for a few rows one C-level membership pass over
        the block and one `cell` per other cell; a block of known texts comes back as it
        is.
        """
        rows, width = texts.shape
        cols = range(width) if columns is None else list(columns)
        if absent is not None:  # an absent feature is the mode, a known value
            texts = np.where(absent, self.mode if columns is None else self.mode[cols], texts)
        if rows <= _FEW_ROWS:
            known = self.known if columns is None else [self.known[j] for j in cols]
            used, missing, unknown = self._few(texts, cols, known)
            if absent is not None:
                missing |= absent
            return used, missing, unknown
        used = texts
        missing = np.zeros((rows, width), dtype=bool)
        unknown = np.zeros((rows, width), dtype=bool)
        for at, (j, column) in enumerate(zip(cols, texts.T.tolist(), strict=True)):
            got, gone, strange = self.column(j, column)
            if gone is None:
                continue
            if used is texts:
                used = texts.copy()
            used[:, at] = got
            missing[:, at] = gone
            unknown[:, at] = strange  # type: ignore[call-overload]
        if absent is not None:
            missing |= absent
        return used, missing, unknown

    def _few(
        self, texts: np.ndarray, cols: Sequence[int], known: list[frozenset[str]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`categories` of a block of a few rows (`known`: each column's texts), cell by
        cell: a pass per column costs more than one over the whole block."""
        rows, width = texts.shape
        cells = texts.reshape(-1).tolist()
        hits = list(map(frozenset.__contains__, cycle(known), cells))
        missing: list[int] = []
        unknown: list[int] = []
        if not all(hits):
            cell = self.cell
            for at in compress(count(), map(not_, hits)):
                cells[at], gone, strange = cell(cols[at % width], cells[at])
                if gone:
                    missing.append(at)
                elif strange:
                    unknown.append(at)
            texts = _objects(cells).reshape(rows, width)
        return texts, _mask(missing, rows, width), _mask(unknown, rows, width)


def _mask(at: list[int], rows: int, width: int) -> np.ndarray:
    mask = np.zeros((rows, width), dtype=bool)
    if at:
        mask.flat[at] = True
    return mask


def encode(values: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """(distinct values in first-seen order, each value's index among them) of hashable
    values, in C-level passes."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct, np.zeros(len(values), dtype=np.intp)
    index = dict(zip(distinct, range(len(distinct)), strict=True))
    return distinct, np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of `values` (texts are never split into characters)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def pack_table(
    rule: PackingRule, numeric: np.ndarray, columns: Sequence[CategoryColumn | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The two ONNX inputs of a table: `numeric` as read (float64, NaN = null or absent),
    one dictionary-encoded column per categorical feature (None = absent).

    The rule runs on each column's distinct values only, then rows take theirs by index.
    """
    rows = numeric.shape[0]
    categorical = np.empty((rows, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        if column is None:  # absent: one cell stands for every row
            column = CategoryColumn([None], np.zeros(rows, dtype=np.intp))
            absent = np.ones((1, 1), dtype=bool)
        else:
            absent = None
        texts = np.empty((len(column.values), 1), dtype=object)
        texts[:, 0] = [category_text(v) for v in column.values]
        used, _, _ = rule.categories(texts, absent, columns=[j])
        categorical[:, j] = used[column.codes, 0]
    return numeric, categorical
