"""The words the local engine understands, as data: feature phrases, places, changes.

Each table maps text to raw model features (Ames column names). A phrase whose column
the served model does not have is ignored, so another data set only needs new tables.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A number as people write it: 1,800 · 1800 · 2.5 · 250k · 1.2m · 250 thousand.
#: Digit runs are bounded so that no input makes a pattern backtrack for long.
NUM = r"(?<![\d.,])(\d{1,3}(?:,\d{3}){1,4}|\d{1,9}(?:\.\d{1,6})?)\s*(k\b|m\b|thousand\b|million\b)?"
MONEY = r"\$?\s*" + NUM
WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "another": 1}
COUNT = r"(a|an|one|two|three|four|another|\d{1,9})"


@dataclass(frozen=True)
class Phrase:
    """A feature stated in text: the first group of `pattern` is its value."""

    column: str
    pattern: str
    label: str


#: Facts about the house. Order matters: earlier phrases consume their text first.
FEATURE_PHRASES: tuple[Phrase, ...] = (
    Phrase(
        "Lot.Area",
        r"(?:lot (?:of |size )?" + NUM + r"\s*(?:sq\.? ?ft|square feet|sqft|sf)"
        r"|" + NUM + r"\s*(?:sq\.? ?ft|square feet|sqft|sf)?\s*lot)",
        "lot area (sq ft)",
    ),
    Phrase(
        "Total.Bsmt.SF",
        NUM + r"\s*(?:sq\.? ?ft|square feet|sqft|sf)\s*(?:finished\s+)?"
        r"basement",
        "basement area (sq ft)",
    ),
    Phrase(
        "area", NUM + r"\s*(?:sq\.? ?ft|square feet|square foot|sqft|sf)\b", "living area (sq ft)"
    ),
    Phrase("Bedroom.AbvGr", r"(\d{1,9})\s*(?:-\s*)?(?:bed(?:room)?s?|br|bd)\b", "bedrooms"),
    Phrase(
        "Full.Bath",
        r"(\d{1,9}(?:\.5)?)\s*(?:-\s*)?(?:full\s+)?(?:bath(?:room)?s?|ba)\b",
        "bathrooms",
    ),
    Phrase("Half.Bath", r"(\d{1,9})\s*half[- ]?bath(?:room)?s?", "half bathrooms"),
    Phrase(
        "Year.Remod.Add",
        r"(?:remodel(?:l)?ed|renovated|updated)\s*(?:in\s*)?(\d{4})",
        "year remodelled",
    ),
    Phrase(
        "Year.Built",
        r"(?:built|constructed|from|year built)\s*(?:in\s*|:\s*)?(\d{4})",
        "year built",
    ),
    Phrase("Garage.Cars", r"(\d)[- ]?car garage", "garage size (cars)"),
    Phrase("Fireplaces", r"(\d)\s*fireplaces?", "fireplaces"),
    Phrase(
        "Overall.Qual",
        r"(?:overall )?quality (?:of |is |rated )?(\d{1,2})(?:\s*/\s*10)?",
        "overall quality (1-10)",
    ),
    Phrase(
        "Overall.Cond",
        r"(?:overall )?condition (?:of |is |rated )?(\d)(?:\s*/\s*10)?",
        "overall condition (1-10)",
    ),
)

#: Facts stated as words, not numbers: (regex, column, value).
FLAG_PHRASES: tuple[tuple[str, str, str | float], ...] = (
    (r"\bno garage\b", "Garage.Cars", 0.0),
    (r"\bno fireplace\b", "Fireplaces", 0.0),
    (r"\bno basement\b", "Total.Bsmt.SF", 0.0),
    (r"\bno (?:central )?air\b", "Central.Air", "N"),
    (r"\b(?:two|2)[- ]stor(?:e)?y\b", "House.Style", "2Story"),
    (r"\b(?:one|1|single)[- ]stor(?:e)?y\b|\branch\b", "House.Style", "1Story"),
    (r"\btown ?house\b|\btownhome\b", "Bldg.Type", "TwnhsE"),
    (r"\bduplex\b", "Bldg.Type", "Duplex"),
)

#: Ames neighbourhood codes and their names (De Cock's data documentation).
NEIGHBORHOODS: dict[str, str] = {
    "Blmngtn": "Bloomington Heights",
    "Blueste": "Bluestem",
    "BrDale": "Briardale",
    "BrkSide": "Brookside",
    "ClearCr": "Clear Creek",
    "CollgCr": "College Creek",
    "Crawfor": "Crawford",
    "Edwards": "Edwards",
    "Gilbert": "Gilbert",
    "Greens": "Greens",
    "GrnHill": "Green Hills",
    "IDOTRR": "Iowa DOT and Rail Road",
    "Landmrk": "Landmark",
    "MeadowV": "Meadow Village",
    "Mitchel": "Mitchell",
    "NAmes": "North Ames",
    "NoRidge": "Northridge",
    "NPkVill": "Northpark Villa",
    "NridgHt": "Northridge Heights",
    "NWAmes": "Northwest Ames",
    "OldTown": "Old Town",
    "SWISU": "South & West of Iowa State University",
    "Sawyer": "Sawyer",
    "SawyerW": "Sawyer West",
    "Somerst": "Somerset",
    "StoneBr": "Stone Brook",
    "Timber": "Timberland",
    "Veenker": "Veenker",
}


@dataclass(frozen=True)
class Change:
    """A what-if edit: add `delta` to `column`, set it to `value`, or copy `copy_from`.

    A copy is a field of its own, never a value spelled "=col": a value is data (a
    category "=x" from an LLM is just an unknown category), not an instruction.
    """

    column: str
    label: str
    delta: float | None = None
    value: float | str | None = None
    copy_from: str | None = None


#: What-if edits: (regex, label, edits). A `COUNT` group multiplies each delta.
CHANGES: tuple[tuple[str, str, tuple[Change, ...]], ...] = (
    (
        r"add(?:ing)?\s+" + COUNT + r"\s+half[- ]?bath(?:room)?s?",
        "add a half bathroom",
        (Change("Half.Bath", "half bathrooms", delta=1),),
    ),
    (
        r"add(?:ing)?\s+" + COUNT + r"\s+(?:full\s+)?bath(?:room)?s?",
        "add a bathroom",
        (Change("Full.Bath", "bathrooms", delta=1),),
    ),
    (
        r"add(?:ing)?\s+" + COUNT + r"\s+bed(?:room)?s?",
        "add a bedroom",
        (
            Change("Bedroom.AbvGr", "bedrooms", delta=1),
            Change("TotRms.AbvGrd", "rooms above ground", delta=1),
        ),
    ),
    (
        r"add(?:ing)?\s+" + COUNT + r"\s+fireplaces?",
        "add a fireplace",
        (Change("Fireplaces", "fireplaces", delta=1),),
    ),
    (
        r"add(?:ing)?\s+" + COUNT + r"\s+(?:car\s+)?garage(?: space| stall)?s?",
        "add a garage space",
        (
            Change("Garage.Cars", "garage size (cars)", delta=1),
            Change("Garage.Area", "garage area (sq ft)", delta=240),
        ),
    ),
    (
        r"finish(?:ing)?\s+the\s+basement",
        "finish the basement",
        (
            Change("BsmtFin.Type.1", "basement finish", value="GLQ"),
            Change("BsmtFin.SF.1", "finished basement (sq ft)", copy_from="Total.Bsmt.SF"),
            Change("Bsmt.Unf.SF", "unfinished basement (sq ft)", value=0.0),
        ),
    ),
    (
        r"(?:remodel|renovat)\w*\s+(?:the\s+)?kitchen|new kitchen",
        "remodel the kitchen",
        (Change("Kitchen.Qual", "kitchen quality", value="Ex"),),
    ),
    (
        r"add(?:ing)?\s+(?:central\s+)?air(?: conditioning)?",
        "add central air",
        (Change("Central.Air", "central air", value="Y"),),
    ),
    (
        r"(?:raise|improve|increase|upgrade)\s+(?:the\s+)?(?:overall\s+)?quality",
        "raise quality",
        (Change("Overall.Qual", "overall quality (1-10)", delta=1),),
    ),
    (
        r"add(?:ing)?\s+(?:an?\s+)?(?:extension\s+of\s+)?"
        + NUM
        + r"\s*(?:sq\.? ?ft|square feet|sqft)",
        "add living area",
        (Change("area", "living area (sq ft)", delta=1),),
    ),
)
