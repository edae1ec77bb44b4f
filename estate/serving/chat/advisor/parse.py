"""Text → raw model features, deal terms and what-if changes (the local engine's reader).

Only phrases whose column the served model has are used; everything read is reported
back (``understood``) so the user sees exactly what the numbers are based on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from estate.serving.chat.advisor.vocab import (
    CHANGES,
    FEATURE_PHRASES,
    FLAG_PHRASES,
    MONEY,
    NEIGHBORHOODS,
    NUM,
    WORD_NUMBERS,
    Change,
)

_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}


def to_number(digits: str, scale: str | None = None) -> float:
    """'1,800' → 1800.0; ('250', 'k') → 250000.0; 'two' → 2.0."""
    word = digits.lower()
    if word in WORD_NUMBERS:
        return float(WORD_NUMBERS[word])
    value = float(digits.replace(",", ""))
    return value * _SCALE.get((scale or "").lower().strip(), 1.0)


@dataclass
class Parsed:
    """What one or more messages said about the house, the deal and wanted changes."""

    features: dict[str, Any] = field(default_factory=dict)
    understood: list[str] = field(default_factory=list)
    deal: dict[str, float] = field(default_factory=dict)
    down_fraction: float | None = None
    changes: list[tuple[Change, float | str]] = field(default_factory=list)
    change_labels: list[str] = field(default_factory=list)
    leftover: list[str] = field(default_factory=list)
    not_used: list[str] = field(default_factory=list)


def _blank(text: str, match: re.Match[str]) -> str:
    """Remove a matched span so no later pattern reads the same words twice."""
    return text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]


_DEAL_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "monthly_rent",
        r"rent(?:s|ed)?\s*(?:it\s*)?(?:out\s*)?(?:for|at|of|is|would be)?\s*"
        + MONEY
        + r"(?:\s*(?:/|a|per)\s*(?:mo|month))?",
    ),
    ("monthly_rent", MONEY + r"\s*(?:/|a|per)\s*(?:mo|month)\b(?:\s*(?:in\s*)?rent)?"),
    ("hoa", r"hoa\s*(?:fees?\s*)?(?:of|is|are)?\s*" + MONEY),
    ("taxes", r"tax(?:es)?\s*(?:of|is|are)?\s*" + MONEY + r"(?:\s*(?:/|a|per)\s*(?:yr|year))?"),
    ("insurance", r"insurance\s*(?:of|is|costs?)?\s*" + MONEY),
    ("down_payment", MONEY + r"\s*down\b"),
    (
        "asking_price",
        r"(?:asking(?:\s+price)?|listed\s+(?:at|for)|list\s+price|priced\s+at|"
        r"offer(?:ed)?\s+(?:at|for)?|selling\s+for|on sale for|for sale (?:at|for)|buy it for|"
        r"price\s+(?:is|of))\s*(?:is\s*|of\s*)?" + MONEY,
    ),
    ("asking_price", MONEY + r"\s*asking\b"),
    ("asking_price", r"\$\s*" + NUM + r"\s*(?:a\s+)?(?:good|fair|bad)\s+(?:price|deal)"),
    ("asking_price", r"(?:pay(?:ing)?|for|at)\s+\$\s*" + NUM),
)


def _read_deal(text: str, parsed: Parsed) -> str:
    fraction = re.search(r"(\d{1,9}(?:\.\d{1,6})?)\s*%\s*down", text)
    if fraction:
        parsed.down_fraction = float(fraction.group(1)) / 100
        text = _blank(text, fraction)
    rate = re.search(
        r"(\d{1,9}(?:\.\d{1,6})?)\s*%\s*(?:interest|rate|mortgage|apr|fixed|loan)"
        r"|(?:rate|interest|apr)\s*(?:of|at|is)?\s*(\d{1,9}(?:\.\d{1,6})?)\s*%",
        text,
    )
    if rate:
        parsed.deal["rate"] = float(rate.group(1) or rate.group(2))
        text = _blank(text, rate)
    term = re.search(r"(\d{2})[- ]?(?:year|yr)s?\s*(?:fixed\s*)?(?:mortgage|loan|term)", text)
    if term and 5 <= int(term.group(1)) <= 50:
        parsed.deal["term_years"] = float(term.group(1))
        text = _blank(text, term)
    for key, pattern in _DEAL_PATTERNS:
        match = re.search(pattern, text)
        if match:
            parsed.deal[key] = to_number(match.group(1), match.group(2))
            text = _blank(text, match)
    return text


def _read_changes(text: str, parsed: Parsed, columns: set[str]) -> str:
    for pattern, label, edits in CHANGES:
        match = re.search(pattern, text)
        if not match:
            continue
        count = (
            to_number(match.group(1), match.group(2) if match.lastindex == 2 else None)
            if match.groups() and match.group(1)
            else 1.0
        )
        used = [c for c in edits if c.column in columns]
        if not used:
            continue
        for change in used:
            amount = change.value if change.value is not None else count * (change.delta or 0)
            parsed.changes.append((change, amount))
        if label == "add living area":
            label = f"add {count:g} sq ft of living area"
        elif count != 1:
            label = f"{label} x{count:g}"
        parsed.change_labels.append(label)
        text = _blank(text, match)
    return text


def _read_features(text: str, parsed: Parsed, columns: set[str], places: dict[str, str]) -> str:
    for phrase in FEATURE_PHRASES:
        if phrase.column not in columns:
            continue
        match = re.search(phrase.pattern, text)
        if not match:
            continue
        groups = [g for g in match.groups() if g is not None]
        value = to_number(groups[0], groups[1] if len(groups) > 1 else None)
        if phrase.column == "Full.Bath" and not value.is_integer():
            parsed.features["Half.Bath"] = 1.0
            value = float(int(value))
        parsed.features[phrase.column] = value
        parsed.understood.append(f"{phrase.label}: {value:g} → {phrase.column}")
        text = _blank(text, match)
    for pattern, column, flag in FLAG_PHRASES:
        if column in columns and column not in parsed.features and re.search(pattern, text):
            parsed.features[column] = flag
            parsed.understood.append(f"{column} = {flag}")
    for code, name in sorted(places.items(), key=lambda kv: -len(kv[1])):
        match = re.search(r"\b" + re.escape(name.lower()) + r"\b", text) or re.search(
            r"\b" + re.escape(code.lower()) + r"\b", text
        )
        if match and "Neighborhood" in columns:
            parsed.features["Neighborhood"] = code
            parsed.understood.append(f"neighbourhood: {name} → Neighborhood={code}")
            text = _blank(text, match)
            break
    return text


def parse_message(
    text: str,
    columns: set[str],
    neighborhoods: list[str],
    *,
    changes: bool = False,
) -> Parsed:
    """Read one message. With `changes`, what-if edits are read first (and not as facts)."""
    parsed = Parsed()
    # One space between words: with whitespace runs collapsed no pattern can backtrack long.
    lowered = " " + re.sub(r"\s+", " ", text.lower().replace("\u2019", "'")) + " "
    lowered = _read_deal(lowered, parsed)
    if changes:
        lowered = _read_changes(lowered, parsed, columns)
    places = {c: NEIGHBORHOODS.get(c, c) for c in neighborhoods}
    lowered = _read_features(lowered, parsed, columns, places)
    parsed.leftover = [m.group(0).strip() for m in re.finditer(_LEFTOVER, lowered)][:5]
    return parsed


#: A number nobody read, with the words around it: reported back as not understood.
_LEFTOVER = r"(?:[a-z]{1,20}\s){0,2}\$?\d[\d,.]{0,20}%?(?:\s?[a-z]{1,20}){0,2}"
