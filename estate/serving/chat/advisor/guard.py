"""Safety checks shared by both engines: refuse prompt injection, catch invented money.

`invented_money` is what keeps an LLM honest: every dollar figure in its reply must be
one a tool produced (or the user said), up to the rounding the reply shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

_INJECTION = re.compile(
    r"system\s*prompt|api[\s_-]*key|secret\s*key|access\s*token|bearer|password|credential"
    r"|(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous|prior|above|"
    r"earlier)?\s*(?:instructions|rules|prompts?)"
    r"|(?:reveal|print|show|repeat|output|tell me)\s+(?:me\s+)?(?:your|the)\s+"
    r"(?:instructions|prompt|configuration|config|settings|environment|env)"
    r"|developer\s+mode|jailbreak|\bDAN\b",
    re.IGNORECASE,
)

REFUSAL = (
    "I can't share my instructions, configuration or any keys, and I don't change how I "
    "work on request. I can value a house, say what drives its value, check an asking "
    "price, and work out rent, yield, mortgage and cash flow."
)


def is_injection(text: str) -> bool:
    """A request for the system prompt, keys or configuration, or to drop the rules."""
    return _INJECTION.search(text) is not None


REMOVED = "[removed: this turn asked for instructions, keys or configuration]"


def screened(turns: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """The history as the LLM may see it: every turn the guard flags is replaced.

    Chat is stateless, so the client sends every turn, including "assistant" ones it
    may have written itself: all are untrusted, not only the last question.
    """
    return [
        {"role": role, "content": REMOVED if is_injection(content) else content}
        for role, content in turns
    ]


_MONEY = re.compile(
    r"(?:\$|USD\s?)\s?-?(\d{1,3}(?:,\d{3}){1,4}|\d{1,9})(\.\d{1,6})?\s*(k|K|m|M|million|thousand|bn)?\b"
    r"|(\d{1,3}(?:,\d{3}){1,4}|\d{1,9})(\.\d{1,6})?\s*(k|thousand|million)?\s*(?:dollars|USD)\b"
)
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}


def money_figures(text: str) -> list[tuple[str, float, float]]:
    """Every dollar amount in `text`: (as written, value, half the last shown digit)."""
    found = []
    for match in _MONEY.finditer(re.sub(r"\s+", " ", text)):
        whole, frac, scale = (match.group(1), match.group(2), match.group(3))
        if whole is None:
            whole, frac, scale = match.group(4), match.group(5), match.group(6)
        factor = _SCALES.get((scale or "").lower(), 1.0)
        decimals = len(frac) - 1 if frac else 0
        value = float(whole.replace(",", "") + (frac or "")) * factor
        found.append((match.group(0).strip(), value, 0.5 * 10**-decimals * factor))
    return found


def numbers_in(value: Any) -> Iterable[float]:
    """Every finite number inside a JSON-like value (tool results)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from numbers_in(item)


def invented_money(reply: str, known: Iterable[float], said: str = "") -> list[str]:
    """Dollar figures in `reply` that match no known number (nor one the user `said`)."""
    allowed = [abs(v) for v in known] + [abs(v) for _, v, _ in money_figures(said)]
    allowed += [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]{0,20}(?:\.\d{1,6})?", said)]
    bad = []
    for text, value, half_unit in money_figures(reply):
        tolerance = max(half_unit, 0.005 * value, 0.51)
        if not any(abs(value - a) <= tolerance for a in allowed):
            bad.append(text)
    return bad


_PERCENT = re.compile(r"(\d{1,9})(\.\d{1,6})?\s?%")


def invented_percent(reply: str, known: Iterable[float], said: str = "") -> list[str]:
    """Percentages in `reply` that match no known fraction (x 100) or number, nor the user's."""
    values = [abs(v) for v in known]
    allowed = values + [100 * v for v in values]
    allowed += [float(n) for n in re.findall(r"\d{1,9}(?:\.\d{1,6})?", said.replace(",", ""))]
    bad = []
    for match in _PERCENT.finditer(re.sub(r"\s+", " ", reply)):
        decimals = len(match.group(2)) - 1 if match.group(2) else 0
        value = float(match.group(1) + (match.group(2) or ""))
        tolerance = max(0.5 * 10**-decimals, 0.005 * value)
        if not any(abs(value - a) <= tolerance for a in allowed):
            bad.append(match.group(0))
    return bad
