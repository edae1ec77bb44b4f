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

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        if self.task == "binary_classification" and self.target_transform != "none":
            raise ValueError("target_transform applies to regression only")
        if self.task == "binary_classification" and self.positive_label is None:
            raise ValueError("binary_classification needs positive_label (the value of class 1)")
        return self

    @property
    def classifier(self) -> bool:
        return self.task == "binary_classification"


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
