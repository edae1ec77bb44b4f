"""The manifest's input and output schema: the features the graph reads, what it predicts.

How raw values become the graph's inputs is one rule, which `estate.runtime.packing`
implements for JSON rows, DataFrames and Arrow tables alike (predict, explain, chat,
`estate score`, BigQuery's SQL and the training encoder):

* a number that is null or absent → NaN (the graph imputes the training median);
* a category's text is stripped, and an integral number is written without a fraction
  (``60``, ``60.0``, and ``"60.0"`` when that is not a training category → ``"60"``);
* a missing category -- null, NaN, blank, or ``"NA"`` when ``"NA"`` is not a training
  category -- becomes `MISSING_CATEGORY` when ``"NA"`` is a training category
  (training reads an empty cell as ``"NA"``), else the training mode (``impute``);
* an absent feature (a key a row does not send, a column a file does not have) becomes
  the training mode;
* every filled value is reported to callers as "imputed", naming the value used.

The rule is the reader's, not the format's: bundles are unchanged by it. The models obey
the compatibility rule of `estate.contract.bundle`, which re-exports them.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Category training gives a missing categorical value (the Ames data uses NA too).
MISSING_CATEGORY = "NA"

Task = Literal["regression", "binary_classification"]


def category_text(value: object) -> str | None:
    """The text of a categorical value, None when it is null or NaN ("" when blank).

    Strips whitespace (the Ames file has ``"WD "``) and writes integral numbers without a
    decimal point (``60.0`` and ``60`` → ``"60"``).
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def normalize_category(value: object) -> str:
    """Canonical string of a categorical value as training fits it: `category_text`, with
    a null or blank value as `MISSING_CATEGORY`. (Packing a value for the graph also
    knows the training categories: see the module docstring.)
    """
    return category_text(value) or MISSING_CATEGORY


class ContractModel(BaseModel):
    """Base of every bundle-format model: unknown fields are ignored when reading (rule 1).

    Validators are built on first use (``defer_build``): the manifest's ~26 nested
    classes are then compiled once, inside `Manifest`'s, not each on its own at import
    (~3 ms of a serving cold start)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class NumericFeature(ContractModel):
    """A numeric input column, with the training statistics serving checks against."""

    kind: Literal["numeric"] = "numeric"
    name: str
    integer: bool = Field(description="All training values were whole numbers.")
    impute: float = Field(description="Value used for a missing input (training median).")
    min: float
    max: float
    mean: float
    quantiles: dict[str, float] = Field(description="Training quantiles, keys 'p01'…'p99'.")
    missing_rate: float
    log1p: bool = Field(description="The graph applies log(1 + max(x, 0)) before the model.")
    description: str = ""
    label: str | None = Field(None, description="Readable name (None: show `name`).")
    unit: str | None = Field(None, description="Unit of the value, e.g. 'sq ft'.")


class CategoricalFeature(ContractModel):
    """A categorical input column and the categories seen in training."""

    kind: Literal["categorical"] = "categorical"
    name: str
    categories: list[str]
    frequencies: dict[str, float] = Field(description="Training share of each category.")
    impute: str = Field(description="Category used for a missing input (training mode).")
    missing_rate: float
    description: str = ""
    label: str | None = Field(None, description="Readable name (None: show `name`).")
    unit: str | None = None
    ordinal: list[str] | None = Field(
        None,
        description="Ordered levels, lowest first: the graph encodes this feature as one "
        "number, its level (see `ordinal_level`), instead of one-hot columns. None: one-hot.",
    )


#: Level of a missing value (`MISSING_CATEGORY`) on an ordinal scale that does not name it.
ORDINAL_MISSING_LEVEL = 0.0


def ordinal_levels(feature: CategoricalFeature) -> dict[str, float]:
    """Category → number of an ordinal feature: ``levels[i]`` is ``i + 1`` and a missing
    value (``"NA"``, unless the scale names it) is 0, below every level.

    A value the scale does not hold never reaches here from training (the config is
    refused); at serving it is packed as an unknown category (flagged "unknown") and
    encoded as the level of the training mode (``impute``), the value a missing input
    of a feature without ``"NA"`` gets: the model uses its most common value.
    """
    levels = {c: float(i + 1) for i, c in enumerate(feature.ordinal or [])}
    levels.setdefault(MISSING_CATEGORY, ORDINAL_MISSING_LEVEL)
    return levels


class DerivedFeature(NumericFeature):
    """A number the graph computes from raw inputs by a formula (`estate.runtime.formula`);
    callers never send it. Its statistics are those of its training values.

    Inputs are the values the model sees (a missing number is its training median, an
    ordinal feature its level); a result that is not finite (a zero denominator,
    overflow) becomes ``impute``, the derived feature's training median.

    Compatibility (rule 1): the graph computes derived and ordinal features itself, so a
    reader that predates these fields still predicts exactly; its explainer, which would
    re-encode rows without them, refuses the bundle's explainer file (the encoded columns
    differ) with a "re-export" error rather than misreading it.
    """

    kind: Literal["derived"] = "derived"  # type: ignore[assignment]
    formula: str = Field(description="The formula, e.g. 'Yr.Sold - Year.Built'.")
    inputs: list[str] = Field(description="The raw features the formula reads.")


class InputSchema(ContractModel):
    """Raw features in the order of the ONNX inputs' columns."""

    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]
    dropped: list[str] = Field([], description="Columns ignored by the model.")
    derived: list[DerivedFeature] | None = Field(
        None,
        description="Features the graph derives from the raw inputs (not sent by callers), "
        "in the order of their encoded columns. None: none (the old behaviour).",
    )

    def names(self) -> list[str]:
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    def derived_features(self) -> list[DerivedFeature]:
        """The derived features (none for a bundle that declares none)."""
        return list(self.derived or [])

    def labels(self) -> dict[str, str]:
        """Feature name → readable label, for the features whose config gave one."""
        features: list[NumericFeature | CategoricalFeature] = [
            *self.numeric,
            *self.categorical,
            *(self.derived or []),
        ]
        return {f.name: f.label for f in features if f.label}


class OutputSpec(ContractModel):
    """What the model predicts and in which units."""

    name: str = Field(description="Response field, e.g. 'price' or 'probability'.")
    target: str
    description: str
    units: str
    target_transform: Literal["none", "log"]
    positive_label: str | None = None
    negative_label: str | None = None
