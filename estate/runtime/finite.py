"""The one finiteness check every returned number passes (predict, explain, chat)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from estate.contract.errors import CannotEstimateError, FieldError


def first_non_finite(value: Any, path: str) -> str | None:
    """Where (``predictions[3].interval.upper``) the first NaN or infinity in `value` sits."""
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


def out_of_range(warnings: list[dict[str, str]], where: str) -> list[FieldError]:
    """A row's out-of-range input warnings as field errors under `where` (``instances[3]``)."""
    return [
        FieldError(f"{where}.{w['field']}", w["message"], "out_of_range")
        for w in warnings
        if w.get("code") == "out_of_range"
    ]


def require_finite(
    value: Any, what: str, inputs: list[FieldError] | Callable[[], list[FieldError]]
) -> None:
    """The one finiteness check every returned number passes (predict, explain, chat).

    Extreme (finite) inputs can push an output to infinity or NaN: raise `CannotEstimateError`
    naming `inputs` (the fields that caused it) rather than fail to encode the answer.
    `inputs` may be a function, called only when the check fails (batches build their
    warnings lazily).
    """
    found = first_non_finite(value, what)
    if found is None:
        return
    raise CannotEstimateError(
        f"{found} is not a finite number: the inputs below are so far outside the training "
        "data (or so large) that the answer overflows. Bring them closer to real values "
        "(GET this URL for the training ranges).",
        inputs() if callable(inputs) else inputs,
    )
