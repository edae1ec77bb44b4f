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

The sources are thin adapters: `DictPacker` for validated JSON instances (predict,
explain, chat), `pack_table` for dictionary-encoded columns (training's pandas encoder
and `estate score`'s Arrow reader build those; this module imports neither library).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, count, cycle, repeat
from operator import add, is_not, itemgetter, not_
from typing import Any

import numpy as np

from estate.contract.bundle import MISSING_CATEGORY, InputSchema, category_text

_NUMBER_TYPES = frozenset({int, float, type(None)})
#: Category cells the validator passes as their text: strings, nulls, and integers (Ames
#: callers send ``"MS.SubClass": 20``; the validator writes them as ``str(20)``).
_TEXT_TYPES = frozenset({str, int, type(None)})
#: Integers taken as category texts on the fast path (larger ones go to the validator,
#: which bounds a text's length).
_INT_TEXT_LIMIT = 2**63
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
        self._all = list(range(len(cats)))
        #: Per feature: the texts that are missing, and what each becomes.
        self._fills: list[dict[str | None, str]] = [
            {None: fill, "": fill} | ({} if na else {MISSING_CATEGORY: fill})
            for fill, na in zip(self.null_fill.tolist(), self.na_known.tolist(), strict=True)
        ]
        self._min = np.array([f.min for f in schema.numeric], dtype=np.float64)
        self._max = np.array([f.max for f in schema.numeric], dtype=np.float64)

    def numbers(self, numeric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(missing, outside the training range) of a float64 block, NaN = missing."""
        missing = np.isnan(numeric)
        outside = (numeric < self._min) | (numeric > self._max)  # False for NaN
        return missing, outside

    def categories(
        self,
        texts: np.ndarray,
        absent: np.ndarray | None = None,
        columns: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(texts used, missing, unknown) of an object block of `category_text` values
        (None or "" = null); `absent` marks cells of features not sent; `columns` says
        which features the block's columns are (default: all, in schema order).

        A known text is kept as it is, so the common case is one C-level membership pass
        over the block; only the other cells (missing, unknown) take a Python step each.
        """
        rows, width = texts.shape
        cols = self._all if columns is None else list(columns)
        known = self.known if columns is None else [self.known[j] for j in cols]
        if absent is not None:  # an absent feature is the mode, a known value
            texts = np.where(absent, self.mode if columns is None else self.mode[cols], texts)
        cells = texts.reshape(-1).tolist()
        hits = list(map(frozenset.__contains__, cycle(known), cells))
        missing: list[int] = []
        unknown: list[int] = []
        if not all(hits):
            fills = self._fills
            for at in compress(count(), map(not_, hits)):
                j = cols[at % width]
                fill = fills[j].get(cells[at])
                if fill is not None:
                    cells[at] = fill
                    missing.append(at)
                    continue
                text = cells[at] = integral_text(cells[at])
                if text not in self.known[j]:
                    unknown.append(at)
            texts = np.empty(len(cells), dtype=object)
            texts[:] = cells
            texts = texts.reshape(rows, width)
        gone = _mask(missing, rows, width)
        if absent is not None:
            gone |= absent
        return texts, gone, _mask(unknown, rows, width)


def _mask(at: list[int], rows: int, width: int) -> np.ndarray:
    mask = np.zeros((rows, width), dtype=bool)
    if at:
        mask.flat[at] = True
    return mask


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


class DictPacker:
    """Validated JSON instances (dicts; absent keys allowed) → `Packed`.

    Row lookups run in C (`itemgetter`; a row lacking a key is looked up again merged
    onto all-None defaults), texts are stripped with one C-level ``map`` per row, and
    `PackingRule` does the rest on whole blocks, so 1 row and 5,000 cost little.
    """

    def __init__(self, schema: InputSchema) -> None:
        self.rule = PackingRule(schema)
        self._k, self._m = len(schema.numeric), len(schema.categorical)
        self._cat_names = [c.name for c in schema.categorical]
        self._num_names = [f.name for f in schema.numeric]
        self._blank: dict[str, Any] = dict.fromkeys(schema.names())
        self._num_get = _tuple_getter([f.name for f in schema.numeric])
        self._cat_get = _tuple_getter(self._cat_names)

    def pack(self, instances: list[dict[str, Any]]) -> Packed:
        return self._pack(instances, *self._lookup(instances))

    def pack_if_clean(
        self, rows: list[Any], known: frozenset[str], max_string: int
    ) -> Packed | None:
        """`rows` packed straight from the parsed JSON when every cell is one the
        contract's validator would pass unchanged, else None (validate them first).

        Clean means: objects with known keys only, numbers that are JSON numbers (int or
        float, not bool) and finite, categories that are ASCII strings of at most
        `max_string` characters, nulls anywhere, and at least one value per row. All of
        it is checked with C-level passes over the columns the packing looks up anyway,
        so a clean batch is read once instead of validated and then read again; any other
        row (a wrong type, NaN, a number for a category, a non-ASCII text, an empty row)
        sends the whole batch through the validator, which names the bad fields.
        """
        if not rows or not all(type(r) is dict for r in rows):
            return None
        if not all(map(known.issuperset, rows)):
            return None
        numeric_rows, category_rows, partial = self._lookup(rows)
        numbers = list(chain.from_iterable(numeric_rows))
        if not set(map(type, numbers)) <= _NUMBER_TYPES:
            return None
        if not _clean_texts(list(chain.from_iterable(category_rows)), max_string):
            return None
        width = self._k + self._m
        nulls = list(map(tuple.count, numeric_rows, repeat(None)))
        if width and max(map(add, nulls, map(tuple.count, category_rows, repeat(None)))) == width:
            return None  # a row with no value at all: the validator's message names it
        try:
            numeric = np.array(numeric_rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            return None
        if np.isfinite(numeric).sum() + sum(nulls) != numeric.size:
            return None  # NaN or an infinite value (a literal, or 1e400 read as inf)
        return self._pack(rows, numeric_rows, category_rows, partial, numeric)

    def pack_columns_if_clean(
        self, columns: dict[str, list[Any]], rows: int, max_string: int
    ) -> Packed | None:
        """A columnar batch (feature → one value per row, every list `rows` long, known
        names only) packed column by column, or None when any cell is one the validator
        would change or refuse (the same classes as `pack_if_clean`); a feature not in
        `columns` is absent from every row.

        The arrays are those `pack` gives for the rows ``{name: columns[name][i]}``:
        numbers go through the same float64 conversion, texts through the same strip.
        """
        n, k = rows, self._k
        has_value = np.zeros(n, dtype=bool)
        numeric = np.full((n, k), np.nan, dtype=np.float64)
        for j, name in enumerate(self._num_names):
            values = columns.get(name)
            if values is None:
                continue
            if not set(map(type, values)) <= _NUMBER_TYPES:
                return None
            try:
                numeric[:, j] = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer beyond float64
                return None
            nulls = values.count(None)
            column = numeric[:, j]
            if np.isfinite(column).sum() + nulls != n:
                return None  # NaN or an infinite value
            if nulls < n:
                has_value |= ~np.isnan(column)
        cells = np.full((n, self._m), None, dtype=object)
        absent = np.zeros((n, self._m), dtype=bool)
        for j, name in enumerate(self._cat_names):
            values = columns.get(name)
            if values is None:
                absent[:, j] = True
                continue
            if not _clean_texts(values, max_string):
                return None
            nulls = values.count(None)
            try:
                cells[:, j] = list(map(str.strip, values))  # the common case: all strings
            except TypeError:  # None (missing) or an integer
                cells[:, j] = [
                    None if v is None else v.strip() if type(v) is str else str(v) for v in values
                ]
            if nulls == 0:
                has_value[:] = True
            elif nulls < n:
                has_value |= np.fromiter(map(is_not, values, repeat(None)), dtype=bool, count=n)
        if not has_value.all():
            return None  # a row with no value at all: the validator's message names it
        missing, outside = self.rule.numbers(numeric)
        categorical, missing_category, unknown = self.rule.categories(
            cells, absent if absent.any() else None
        )
        return Packed(numeric, categorical, missing, outside, missing_category, unknown)

    def _pack(
        self,
        instances: list[dict[str, Any]],
        numeric_rows: list[tuple[Any, ...]],
        category_rows: list[tuple[Any, ...]],
        partial: list[int],
        numeric: np.ndarray | None = None,
    ) -> Packed:
        n, k, m = len(instances), self._k, self._m
        if numeric is None:
            numeric = np.array(numeric_rows, dtype=np.float64)
        numeric = numeric.reshape(n, k)
        missing, outside = self.rule.numbers(numeric)  # None became NaN
        cells: list[str | None] = []
        for values in category_rows:
            try:
                cells += list(map(str.strip, values))  # the common case: all strings
            except TypeError:  # None (missing) or a non-string
                cells += [
                    None if v is None else v.strip() if type(v) is str else category_text(v)
                    for v in values
                ]
        flat = np.empty(n * m, dtype=object)
        flat[:] = cells
        absent = None
        if partial:
            present = np.ones((n, m), dtype=bool)
            for i in partial:
                present[i] = list(map(instances[i].__contains__, self._cat_names))
            absent = ~present
        categorical, missing_category, unknown = self.rule.categories(flat.reshape(n, m), absent)
        return Packed(numeric, categorical, missing, outside, missing_category, unknown)

    def _lookup(
        self, instances: list[dict[str, Any]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
        """Per row: numeric and categorical values in schema order (None if absent), and
        the rows that lack a key."""
        num_get, cat_get, blank = self._num_get, self._cat_get, self._blank
        numeric, categorical, partial = [], [], []
        for i, row in enumerate(instances):
            try:  # complete rows: two C-level lookups
                numeric.append(num_get(row))
                categorical.append(cat_get(row))
            except KeyError:  # some feature absent: look it up as None
                full = {**blank, **row}
                if len(numeric) > len(categorical):
                    numeric.pop()
                numeric.append(num_get(full))
                categorical.append(cat_get(full))
                partial.append(i)
        return numeric, categorical, partial


def _clean_texts(texts: list[Any], max_string: int) -> bool:
    """True when every category cell is null, an ASCII string of at most `max_string`
    characters, or an integer (not bool) of fewer than 19 digits: cells the validator
    passes as their text unchanged."""
    kinds = set(map(type, texts))
    if not kinds <= _TEXT_TYPES:
        return False
    if int in kinds:
        ints = [t for t in texts if type(t) is int]
        if max(ints) >= _INT_TEXT_LIMIT or min(ints) <= -_INT_TEXT_LIMIT:
            return False
        texts = [t for t in texts if type(t) is str]
    present = [t for t in texts if t]
    return all(map(str.isascii, present)) and max(map(len, present), default=0) <= max_string


def _tuple_getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``itemgetter(*names)`` that always returns a tuple (also for 0 or 1 name)."""
    if len(names) > 1:
        return itemgetter(*names)
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return lambda row: ()
