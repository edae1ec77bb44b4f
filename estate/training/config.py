"""The typed per-data-set config (a small TOML file), validated once at start-up.

See ``configs/ames.toml`` for a commented example.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from estate.contract.bundle import Task
from estate.contract.errors import ConfigError
from estate.runtime.formula import FormulaError, parse


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidate(_Strict):
    """One model to try: a name for reports, an estimator kind and its parameters."""

    name: str
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)


class Gates(_Strict):
    """Quality thresholds a model must pass to be promoted. Keys are metric names.

    See estate/training/gates.py for every gate (metrics, parity, schema, champion).
    """

    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    champion_tolerance: float = Field(
        0.01,
        ge=0.0,
        description="How much worse (relative) than the champion's selection metric on the "
        "same holdout a new model may be and still replace it (0.01 = 1 %).",
    )
    max_parity_rel_diff: float | None = Field(
        None, gt=0.0, description="Stricter ONNX parity for promotion than parity_tolerance."
    )
    max_additivity_error: float = Field(
        1e-4,
        gt=0.0,
        description="Largest |base value + sum of SHAP values - served output| (in the "
        "explainer's scale) a bundle with an explainer may show and still be promoted.",
    )


class FeatureDoc(_Strict):
    """How people should read one feature: shown by the schema, explain, chat and the web."""

    label: str = Field(min_length=1, max_length=80, description="Readable name.")
    description: str = Field("", max_length=500)
    unit: str | None = Field(None, max_length=40, description="e.g. 'sq ft', 'USD', 'year'.")


class Period(_Strict):
    """The columns that date a row (for the model card's period)."""

    year: str
    month: str | None = None


class ComparablesConfig(_Strict):
    """Which columns of a regression data set describe a sale to people (``[comparables]``).

    Training writes these columns of its sales into ``comparables.npz``; predict, explain,
    chat and the web page show the sales most like a house (estate/runtime/comparables.py).
    The price is the target; the sale date defaults to the config's ``period``.
    """

    fields: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Columns shown with each sale, in order (area, beds, baths, year built, …).",
    )
    id: str | None = Field(None, description="Column that identifies a sale (e.g. parcel id).")
    date: Period | None = Field(None, description="Columns that date a sale (default: period).")
    latitude: str | None = Field(None, description="Latitude column (degrees), with longitude.")
    longitude: str | None = Field(None, description="Longitude column (degrees).")
    features: int = Field(
        12, ge=1, le=50, description="How many of the model's most important features count."
    )
    geo_share: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="Share of the distance given to km (None: the coordinates' own share "
        "of the model's importance).",
    )
    max_rows: int = Field(
        20_000, ge=10, le=200_000, description="Most sales kept (the most recent ones)."
    )

    @model_validator(mode="after")
    def _pair(self) -> ComparablesConfig:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("[comparables] needs both latitude and longitude, or neither")
        return self


class DatasetConfig(_Strict):
    """How to train on one tabular data set."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Model name in the store.")
    description: str
    data: str = Field(description="Default data URI: a local path (relative to cwd) or gs://.")
    task: Task
    target: str
    target_transform: Literal["none", "log"] = "none"
    output_name: str = Field(description="Response field: 'price', 'probability', …")
    units: str = ""
    positive_label: str | None = None
    drop_columns: list[str] = Field(default_factory=list)
    row_filter: str | None = Field(None, description="pandas query of the rows to keep.")
    categorical: list[str] = Field(
        default_factory=list, description="Numeric-looking columns to treat as categories."
    )
    log1p: Literal["auto", "none"] | list[str] = "auto"
    seed: int = 42
    folds: int = Field(5, ge=2, le=20)
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    interval_level: float = Field(0.9, gt=0.5, lt=1.0)
    interval_method: Literal["normalized_conformal", "cross_conformal"] = Field(
        "normalized_conformal",
        description="Regression interval served: a per-row band (normalized conformal, "
        "with a scale output in the graph) or one fixed band for every row.",
    )
    parity_tolerance: float = Field(
        1e-4,
        gt=0.0,
        description="ONNX vs pipeline, relative: on the prediction (regression) or on the "
        "odds of the probability (classification).",
    )
    parity_abs_tolerance: float = Field(
        1e-6,
        gt=0.0,
        lt=0.01,
        description="Classification: a probability this close (absolutely) to the "
        "pipeline's agrees whatever its odds (float32 cannot resolve tiny probabilities).",
    )
    candidates: list[Candidate] = Field(min_length=1)
    cheaper_within: float = Field(
        0.0,
        ge=0.0,
        lt=0.1,
        description="Choose the cheapest candidate to predict (ONNX ms per 1,000 rows) "
        "among those whose CV selection metric is within this fraction of the best "
        "(0.005 = 0.5 %); 0: the best CV, whatever it costs.",
    )
    gates: Gates = Field(default_factory=Gates)
    features: dict[str, FeatureDoc] = Field(
        default_factory=dict, description="Feature name → label, description and unit."
    )
    data_card: str | None = Field(None, description="The data set's documentation (path).")
    period: Period | None = Field(None, description="Columns that date a sale.")
    intended_use: str | None = Field(None, description="Model card: what the model is for.")
    limits: list[str] = Field(
        default_factory=list, description="Model card: known limits, besides training ranges."
    )
    comparables: ComparablesConfig | None = Field(
        None, description="Columns of comparable sales (regression only; None: no comparables)."
    )
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Derived feature name → formula of raw numeric or ordinal columns "
        "(estate/runtime/formula.py), computed inside the ONNX graph.",
    )
    scales: dict[str, list[str]] = Field(
        default_factory=dict, description="Named ordinal scales, lowest level first."
    )
    ordinal: dict[str, list[str] | str] = Field(
        default_factory=dict,
        description="Categorical column → its levels (lowest first) or a name in `scales`: "
        "encoded as one number, its level, instead of one-hot columns.",
    )

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        if self.task == "binary_classification" and self.target_transform != "none":
            raise ValueError("target_transform applies to regression only")
        if self.task == "binary_classification" and self.positive_label is None:
            raise ValueError("binary_classification needs positive_label (the value of class 1)")
        if self.task == "binary_classification" and self.comparables is not None:
            raise ValueError(
                "[comparables] applies to regression only: comparable sales need a sale price"
            )
        self._check_features()
        return self

    def _check_features(self) -> None:
        """Ordinal scales and derived formulas: every message names the config key."""
        for name, levels in self.scales.items():
            _check_levels(f"scales.{toml_key(name)}", levels)
        for column, scale in self.ordinal.items():
            where = f"ordinal.{toml_key(column)}"
            if isinstance(scale, str):
                if scale not in self.scales:
                    raise ValueError(
                        f"{where} = {scale!r} names no scale; define scales.{toml_key(scale)} = "
                        f"[lowest, ..., highest] or give the levels; scales: {sorted(self.scales)}"
                    )
            else:
                _check_levels(where, scale)
        ordinal_names = set(self.ordinal)
        for name, text in self.derived.items():
            where = f"derived.{toml_key(name)}"
            try:
                formula = parse(text)
            except FormulaError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if name in ordinal_names or name in self.categorical or name == self.target:
                raise ValueError(f"{where}: the name is already a column of the config")
            clash = sorted(set(formula.inputs) & (set(self.derived) | {self.target}))
            if clash:
                raise ValueError(
                    f"{where} reads {clash}: a formula reads raw numeric or ordinal columns, "
                    "not the target or other derived features"
                )
            bad = sorted(set(formula.inputs) & (set(self.categorical) | set(self.drop_columns)))
            if bad:
                raise ValueError(
                    f"{where} reads {bad}, which the config drops or treats as (one-hot) "
                    "categories; a formula reads numeric or ordinal columns"
                )
        dropped = sorted(ordinal_names & (set(self.drop_columns) | {self.target}))
        if dropped:
            raise ValueError(f"ordinal names {dropped}, which the config drops (or the target)")

    def ordinal_scales(self) -> dict[str, list[str]]:
        """Column → its levels, lowest first (named scales resolved)."""
        return {
            column: list(self.scales[scale]) if isinstance(scale, str) else list(scale)
            for column, scale in self.ordinal.items()
        }

    @property
    def classifier(self) -> bool:
        return self.task == "binary_classification"


def toml_key(name: str) -> str:
    """A TOML key as the config writes it (quoted when it has dots or other characters)."""
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'


def _check_levels(where: str, levels: list[str]) -> None:
    if not levels:
        raise ValueError(f"{where} is empty; list the levels, lowest first")
    clean = [level.strip() for level in levels]
    if any(not level for level in clean) or clean != levels:
        raise ValueError(f"{where}: a level must be non-blank text without outer spaces")
    doubles = sorted({level for level in levels if levels.count(level) > 1})
    if doubles:
        raise ValueError(f"{where} repeats {doubles}; each level once, lowest first")


def load_config(path: str | Path) -> DatasetConfig:
    """Read and validate a config file; errors name the file and the bad key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} not found; see configs/ for examples.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a valid data-set config:\n{exc}") from exc
