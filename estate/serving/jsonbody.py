"""Strict JSON parsing of request bodies: UTF-8, no duplicate keys, bounded nesting and
a bounded number of values, counted before any parsing work (a 413, not a 500, for a
body that would not fit in memory)."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json

from estate.contract.errors import InvalidInputError, TooLargeError
from estate.contract.instances import shown


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = dict(pairs)
    if len(seen) == len(pairs):
        return seen
    found: set[str] = set()
    for key, _ in pairs:
        if key in found:
            raise ValueError(f"duplicate key {shown(key)!r}")
        found.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a duplicate")


def _no_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """True when `parsed` (the plain parse of `raw`) provably lost no duplicate key, checked
    with C-level counts, so a batch skips the slow per-object duplicate hook.

    Only for the shapes batches come in: an object whose values are scalars, arrays of
    scalars, or arrays / objects of such objects (``{"instances": [{...}, ...]}``,
    ``{"columns": {name: [...]}}``). If the text has no more ``{`` than the objects
    found, those are all its objects; its ``:`` count (strings included) bounds its
    key-value pairs from above and the keys kept bound them from below, so equal counts
    mean every pair was kept. Anything else (a colon or brace inside a string, other
    shapes) returns False and the strict parse decides.
    """
    if type(parsed) is not dict:
        return False
    objects, keys = 1, len(parsed)
    for value in parsed.values():
        if type(value) is list:
            dicts = [v for v in value if type(v) is dict]
        elif type(value) is dict:
            dicts = [value]
            dicts.extend(v for v in value.values() if type(v) is dict)
        else:
            continue
        objects += len(dicts)
        keys += sum(map(len, dicts))
    return raw.count(b"{") == objects and raw.count(b":") == keys


def count_json_values(raw: bytes) -> int:
    """An upper bound on the values a JSON text holds, counted in C without parsing.

    Every value after the first in an array or object follows a comma, and every array
    or object opens with a bracket, so ``commas + brackets + 1`` bounds the Python
    objects the parser would build (commas inside strings only make it larger).
    """
    return raw.count(b",") + raw.count(b"{") + raw.count(b"[") + 1


_UNPARSED = object()


def _fast_parse(raw: bytes) -> Any:
    """`raw` parsed by pydantic's Rust JSON parser (about twice as fast as ``json.loads``
    on a 1,000-row batch), or `_UNPARSED` when it refuses the text.

    Where both parsers read a text they build the same values (numbers to the last bit:
    both round correctly; NaN and Infinity literals alike; duplicate keys keep the last
    value, so `_no_duplicate_keys` still decides). It refuses some texts ``json.loads``
    reads (lone surrogate escapes, nesting deeper than 200) and every invalid one: those
    take the ``json.loads`` path, whose answer (a value, or its 400 message) is the
    same as ever.
    """
    try:
        return from_json(raw)
    except ValueError:
        return _UNPARSED


def parse_json(raw: bytes, max_values: int | None = None) -> Any:
    """Decode a JSON body strictly: UTF-8, no duplicate keys, bounded nesting and, with
    `max_values`, a bounded number of values (413 before any parsing work)."""
    if max_values is not None:
        values = count_json_values(raw)
        if values > max_values:
            raise TooLargeError(
                f"The body holds up to {values} JSON values (commas and brackets counted "
                f"before parsing); the limit is {max_values}. Split the batch, or send "
                "only the fields the model reads."
            )
    plain = _fast_parse(raw)
    if plain is not _UNPARSED and _no_duplicate_keys(raw, plain):
        return plain
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        if plain is _UNPARSED:  # not read by the fast parser: Python's decides, as before
            plain = json.loads(text)
            if _no_duplicate_keys(raw, plain):
                return plain
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise InvalidInputError("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidInputError(f"The body is not valid JSON: {exc}.") from None
