"""Validated JSON instances → `Packed`: the packing rule's adapter for predict, explain, chat.

The rule itself is `estate.runtime.packing`'s (`PackingRule`); this module reads rows of
dicts, or columns of a columnar request, into the columns the rule takes, and checks raw
JSON cells on the way (`DictPacker.pack_if_clean`) so that a clean batch is read once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat
from operator import add, itemgetter
from typing import Any

import numpy as np

from estate.contract.bundle import InputSchema, category_text
from estate.runtime.packing import _FEW_ROWS, Packed, PackingRule, _objects, encode

_NUMBER_TYPES = frozenset({int, float, type(None)})
#: Category cells the validator passes as their text: strings, nulls, and integers (Ames
#: callers send ``"MS.SubClass": 20``; the validator writes them as ``str(20)``).
_TEXT_TYPES = frozenset({str, int, type(None)})
#: Integers taken as category texts on the fast path (larger ones go to the validator,
#: which bounds a text's length).
_INT_TEXT_LIMIT = 2**63


class DictPacker:
    """Validated JSON instances (dicts; absent keys allowed) → `Packed`.

    Row lookups run in C (`itemgetter`; a row lacking a key is looked up again merged
    onto all-None defaults), the rows are turned into columns (``zip``), and each
    category column is one C-level membership pass when every cell is a known text, else
    dictionary-encoded (`PackingRule.column`), so 1 row and 5,000 cost little.
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
        n = len(instances)
        numeric_rows, category_rows, partial = self._lookup(instances)
        numeric = np.array(numeric_rows, dtype=np.float64).reshape(n, self._k)
        absent = self._absent(instances, partial)
        if n > _FEW_ROWS:
            got = self._categories(_transposed(category_rows, self._m), n, None)
            assert got is not None  # only a check of raw cells refuses
            return self._packed(numeric, got, absent)
        return self._few(numeric, category_rows, absent)

    def _few(
        self, numeric: np.ndarray, category_rows: list[tuple[Any, ...]], absent: np.ndarray | None
    ) -> Packed:
        """`Packed` of a few rows, as a block (`PackingRule.categories` goes cell by cell):
        a pass per column costs more than one over the whole block."""
        cells: list[str | None] = []
        for values in category_rows:
            try:
                cells += list(map(str.strip, values))  # the common case: all strings
            except TypeError:  # None (missing) or a non-string
                cells += [
                    None if v is None else v.strip() if type(v) is str else category_text(v)
                    for v in values
                ]
        block = _objects(cells).reshape(len(category_rows), self._m)
        used, missing_category, unknown = self.rule.categories(block, absent)
        missing, outside = self.rule.numbers(numeric)
        return Packed(numeric, used, missing, outside, missing_category, unknown)

    def pack_if_clean(
        self, rows: list[Any], known: frozenset[str], max_string: int
    ) -> Packed | None:
        """`rows` packed straight from the parsed JSON when every cell is one the
        contract's validator would pass unchanged, else None (validate them first).

        Clean means: objects with known keys only, numbers that are JSON numbers (int or
        float, not bool) and finite, categories that are ASCII strings of at most
        `max_string` characters or integers, nulls anywhere, and at least one value per
        row. All of it is checked with C-level passes over the columns the packing looks
        up anyway, so a clean batch is read once instead of validated and then read
        again; any other row (a wrong type, NaN, a float for a category, a non-ASCII
        text, an empty row) sends the whole batch through the validator, which names the
        bad fields.
        """
        if not rows or not all(type(r) is dict for r in rows):
            return None
        if not all(map(known.issuperset, rows)):
            return None
        n = len(rows)
        numeric_rows, category_rows, partial = self._lookup(rows)
        numbers = list(chain.from_iterable(numeric_rows))
        if not set(map(type, numbers)) <= _NUMBER_TYPES:
            return None
        try:
            numeric = np.array(numbers, dtype=np.float64).reshape(n, self._k)
        except OverflowError:  # an integer beyond float64
            return None
        if n <= _FEW_ROWS:  # one row: the same checks on the block, in plain Python
            nulls = list(map(tuple.count, numeric_rows, repeat(None)))
            if np.isfinite(numeric).sum() + sum(nulls) != numeric.size:
                return None  # NaN or an infinite value
            if not _clean_texts(list(chain.from_iterable(category_rows)), max_string):
                return None
            width = self._k + self._m
            if (
                width
                and max(map(add, nulls, map(tuple.count, category_rows, repeat(None)))) == width
            ):
                return None  # a row with no value at all: the validator's message names it
            return self._few(numeric, category_rows, self._absent(rows, partial))
        valued = np.isfinite(numeric)
        if not _only_nulls(numbers, valued.reshape(-1)):
            return None  # NaN or an infinite value (a literal, or 1e400 read as inf)
        got = self._categories(_transposed(category_rows, self._m), n, max_string)
        if got is None:
            return None
        if self._k + self._m and not _every_row(valued.sum(axis=1) > 0, got[3]):
            return None  # a row with no value at all: the validator's message names it
        return self._packed(numeric, got, self._absent(rows, partial))

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
        n = rows
        numeric = np.full((n, self._k), np.nan, dtype=np.float64)
        valued: np.ndarray | None = np.zeros(n, dtype=bool)  # None: every row has a value
        for j, name in enumerate(self._num_names):
            values = columns.get(name)
            if values is None:
                continue
            if not set(map(type, values)) <= _NUMBER_TYPES:
                return None
            try:
                column = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer beyond float64
                return None
            finite = np.isfinite(column)
            if finite.all():
                valued = None
            else:
                if not _only_nulls(values, finite):
                    return None  # NaN or an infinite value
                if valued is not None:
                    valued |= finite
            numeric[:, j] = column
        got = self._categories([columns.get(name) for name in self._cat_names], n, max_string)
        if got is None:
            return None
        if valued is not None and not _every_row(valued, got[3]):
            return None  # a row with no value at all: the validator's message names it
        return self._packed(numeric, got, None)

    def _categories(
        self, columns: Sequence[Sequence[Any] | None], n: int, max_string: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """(texts used, missing, unknown, rows with a category value; None = every row)
        of raw category cells, one sequence per feature (None: absent from every row).

        With `max_string`, cells are raw JSON and None comes back when one is not what
        the validator passes unchanged (`_clean_texts`); without it they are validated.
        """
        rule, m = self.rule, self._m
        parts: list[Sequence[Any]] = []  # per feature, the texts used
        missing = np.zeros((n, m), dtype=bool)
        unknown = np.zeros((n, m), dtype=bool)
        valued: np.ndarray | None = np.zeros(n, dtype=bool)
        for j, values in enumerate(columns):
            if values is None:
                parts.append([rule.absent_text[j]] * n)
                missing[:, j] = True
                unknown[:, j] = rule.absent_unknown[j]
                continue
            width = rule.plain_width[j]
            fits = width is not None and (max_string is None or width <= max_string)
            try:
                plain = fits and rule.known[j].issuperset(values)
            except TypeError:  # an unhashable cell (an array, an object)
                return None
            if plain:  # every cell a known text: taken as it is
                parts.append(values)
                valued = None
                continue
            if max_string is not None and not set(map(type, values)) <= _TEXT_TYPES:
                return None  # not a text the validator keeps as it is
            distinct, codes = encode(values)
            if max_string is not None and not _clean_texts(distinct, max_string):
                return None
            texts, gone, strange = rule.cells(j, list(map(category_text, distinct)))
            parts.append(texts[codes])
            missing[:, j] = gone[codes]
            unknown[:, j] = strange[codes]
            if valued is not None:
                if None in distinct:
                    valued |= np.array([v is not None for v in distinct], dtype=bool)[codes]
                else:
                    valued = None
        used = np.empty((n, m), dtype=object)
        if n <= _FEW_ROWS:  # one assignment of the rows (a column each costs ~0.5 µs)
            used[:] = list(zip(*parts, strict=True)) if m else []
        else:
            for j, texts_used in enumerate(parts):
                used[:, j] = texts_used
        return used, missing, unknown, valued

    def _absent(self, instances: list[dict[str, Any]], partial: list[int]) -> np.ndarray | None:
        """Which category cells of the rows that lack a key are absent (None: none)."""
        if not partial:
            return None
        present = np.ones((len(instances), self._m), dtype=bool)
        for i in partial:
            present[i] = list(map(instances[i].__contains__, self._cat_names))
        return ~present

    def _packed(
        self,
        numeric: np.ndarray,
        categories: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
        absent: np.ndarray | None,
    ) -> Packed:
        """`Packed` of the numbers and categories read; `absent` cells become what an
        absent feature does (the mode, flagged missing)."""
        used, missing_category, unknown, _ = categories
        if absent is not None:
            rule = self.rule
            for j in np.flatnonzero(absent.any(axis=0)).tolist():
                rows = absent[:, j]
                used[rows, j] = rule.absent_text[j]
                unknown[rows, j] = rule.absent_unknown[j]
            missing_category |= absent
        missing, outside = self.rule.numbers(numeric)  # None became NaN
        return Packed(numeric, used, missing, outside, missing_category, unknown)

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


def _transposed(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """Rows of `width` values as `width` columns (``zip``, in C)."""
    return list(zip(*rows, strict=True)) if rows and width else [() for _ in range(width)]


def _only_nulls(values: list[Any], finite: np.ndarray) -> bool:
    """True when every value whose float64 (`finite`: that of each) is not finite is a
    null: no NaN, no infinity, no integer read as inf."""
    at = np.flatnonzero(~finite).tolist()
    return not at or set(map(values.__getitem__, at)) == {None}


def _every_row(numbers: np.ndarray, categories: np.ndarray | None) -> bool:
    """True when every row has a number (`numbers`) or a category value (`categories`,
    None: every row has one)."""
    return categories is None or bool((numbers | categories).all())


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
