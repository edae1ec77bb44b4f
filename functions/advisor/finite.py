"""One finiteness check for every number chat returns: NaN or infinity is a 422, never a 500.

The functions encode JSON with ``allow_nan=False``, so an infinite estimate (a what-if
with a billion fireplaces, a yield over a price of 5e-324) would fail after the work was
done. Each tool checks its result here, naming the inputs that caused it; `chat_body`
checks the whole answer once more before it is encoded.
"""

from __future__ import annotations

import math
from typing import Any

from functions.errors import FieldError, HttpError, unprocessable


def first_non_finite(value: Any, path: str) -> str | None:
    """Where (``facts.deal.analysis.dscr``) the first NaN or infinity in `value` sits."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_non_finite(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_non_finite(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def require_finite(value: Any, what: str, inputs: list[FieldError]) -> None:
    """A 422 naming `inputs` when any number inside `value` (called `what`) is not finite."""
    found = first_non_finite(value, what)
    if found is None:
        return
    raise unprocessable(
        f"{found} is not a finite number: the inputs below are so far outside the training "
        "data (or so large) that the answer overflows. Bring them closer to real values.",
        inputs,
    )


def out_of_range(warnings: list[dict[str, str]], where: str) -> list[FieldError]:
    """The model's out-of-range warnings as field errors under `where` (``property``)."""
    return [
        FieldError(f"{where}.{w['field']}", w["message"], "out_of_range")
        for w in warnings
        if w.get("code") == "out_of_range"
    ]


def renamed(exc: HttpError, where: str) -> HttpError:
    """`exc` with its ``instances[0]`` field paths rewritten as `where` (``property``)."""
    exc.errors = [
        FieldError(e.field.replace("instances[0]", where, 1), e.message, e.type) for e in exc.errors
    ]
    exc.detail = exc.detail.replace("instances[0]", where)
    return exc
