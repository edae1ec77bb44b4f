"""The manifest's models: everything training records about a bundle, and `Manifest`.

They obey the compatibility rule of `estate.contract.bundle`, which re-exports them and
reads and verifies manifests (``parse_manifest``); the input and output schema they hold
is `estate.contract.schema`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from estate.contract.schema import ContractModel, InputSchema, OutputSpec, Task


class PredictCost(ContractModel):
    """What a candidate costs to serve (estate/export/cost.py): a report, not a gate."""

    onnx_ms_per_1000_rows: float = Field(
        description="Median ONNX time of 1,000 rows on one onnxruntime thread (the whole "
        "graph, preprocessing included; a blend: its members' added)."
    )
    trees: int = Field(description="Trees of the tree members (0: linear only).")
    shap_paths: int = Field(description="Root-to-leaf paths the exact explainer walks.")
    model_bytes: int = Field(description="Size of the candidate's ONNX graph.")


class CandidateResult(ContractModel):
    """One candidate model's scores: same folds and same holdout for every candidate."""

    name: str
    estimator: str
    params: dict[str, Any]
    cv_metrics: dict[str, float]
    cv_fold_scores: list[float]
    holdout_metrics: dict[str, float]
    fit_seconds: float
    cost: PredictCost | None = Field(None, description="Predict cost (None: not measured).")


class AdaptiveInterval(ContractModel):
    """Normalized conformal: raw ± quantile · scale, then the inverse transform.

    ``scale`` is the graph's `SCALE_OUTPUT` (a small model of the expected |residual| of
    this row); `quantile` is the conformal quantile of |residual| / scale on out-of-fold
    predictions. Serving clips a scale to ``[scale_min, scale_max]`` (the training range)
    and reads NaN as ``scale_max`` (the widest), so no scale can make a band NaN or
    inverted (`estate.runtime.outputs.served_scale`).
    """

    method: Literal["normalized_conformal"] = "normalized_conformal"
    output: Literal["scale"] = "scale"
    quantile: float = Field(description="Conformal quantile of |residual| / scale.")
    scale_min: float = Field(gt=0, description="Smallest scale served (training minimum).")
    scale_max: float = Field(gt=0, description="Largest scale served (training maximum).")
    scale_model: str = Field(description="What estimates the scale, for people.")
    calibration_rows: int
    holdout_coverage: float
    holdout_median_width: float


class FifthCoverage(ContractModel):
    """Holdout coverage of the interval among the rows in one fifth of predicted value."""

    lower: float = Field(description="Smallest prediction in this fifth (output units).")
    upper: float = Field(description="Largest prediction in this fifth (output units).")
    rows: int
    coverage: float
    median_relative_width: float | None = Field(
        None, description="Median (upper - lower) / prediction in this fifth."
    )


class IntervalComparison(ContractModel):
    """One interval method on the holdout, beside the others (same rows, same model)."""

    method: str
    served: bool = Field(description="The method predict answers with.")
    coverage: float
    median_width: float = Field(description="Median upper - lower, output units.")
    median_relative_width: float = Field(description="Median (upper - lower) / prediction.")
    by_fifth: list[FifthCoverage]


class ConformalInterval(ContractModel):
    """Regression interval: raw ± quantile (in the raw scale), then the inverse transform.

    With ``adaptive`` (added within format 1, rule 1) the band is per row instead
    (`AdaptiveInterval`); the fields above it still describe the fixed band, calibrated on
    the same predictions, which is what a reader that predates ``adaptive`` serves.
    """

    method: Literal["cross_conformal"] = "cross_conformal"
    level: float
    quantile: float = Field(description="Conformal quantile of |residual| in the raw scale.")
    calibration_rows: int
    holdout_coverage: float
    holdout_median_width: float
    adaptive: AdaptiveInterval | None = Field(
        None, description="Per-row band served instead of the fixed one (None: fixed band)."
    )
    comparison: list[IntervalComparison] | None = Field(
        None, description="Each interval method on the holdout, computed by training."
    )

    @property
    def served_coverage(self) -> float:
        """Holdout coverage of the band predict serves."""
        return (self.adaptive or self).holdout_coverage

    @property
    def served_median_width(self) -> float:
        """Holdout median width (output units) of the band predict serves."""
        return (self.adaptive or self).holdout_median_width


class DecisionThreshold(ContractModel):
    """Classification: label = positive when probability >= value."""

    value: float
    criterion: str
    holdout_metrics: dict[str, float]


class Lineage(ContractModel):
    """Where the training data came from, byte for byte."""

    source_uri: str
    sha256: str
    bytes: int
    rows: int
    rows_used: int
    columns: int
    row_filter: str | None = None
    snapshot_uri: str | None = None


class Parity(ContractModel):
    """Measured agreement of the ONNX graph with the fitted pipeline on held-out rows.

    Regression: ``max_rel_diff`` is the largest relative difference of a prediction.
    Classification (``tolerance_abs`` set): a probability agrees when it is within
    ``tolerance_abs`` absolutely or its odds are within ``tolerance_rel`` relatively;
    ``max_rel_diff`` is the largest ``|Δ log-odds|`` among rows the absolute rule does not
    settle (estate/export/exporter.py, ``measure_parity``).
    """

    rows: int
    max_abs_diff: float
    max_rel_diff: float
    tolerance_rel: float
    tolerance_abs: float | None = Field(
        None, description="Classification: absolute tolerance on the probability."
    )
    scale_max_rel_diff: float | None = Field(
        None, description="Adaptive interval: largest relative difference of the scale output."
    )


class NumericHistogram(ContractModel):
    """Training distribution of a number: bins cut at training quantiles, plus missing.

    Bin ``i`` holds values ``x`` with ``edges[i-1] <= x < edges[i]`` (open at both ends), so
    ``proportions`` has ``len(edges) + 1`` entries; ``missing`` is the share of absent values.
    """

    edges: list[float]
    proportions: list[float]
    missing: float = 0.0


class CategoricalHistogram(ContractModel):
    """Training share of each category; unseen categories count as `OTHER_CATEGORY`."""

    proportions: dict[str, float]


#: Bucket of categories never seen in training, in drift histograms.
OTHER_CATEGORY = "__other__"


class DriftReference(ContractModel):
    """Reference histograms for drift monitoring (PSI), written at training time."""

    rows: int = Field(description="Training rows the histograms were computed on.")
    numeric: dict[str, NumericHistogram]
    categorical: dict[str, CategoricalHistogram]
    prediction: NumericHistogram = Field(description="Out-of-fold predictions, output units.")


class ModelFile(ContractModel):
    # `estate.contract.bundle.MODEL_FILE`, written out like the side files' names below:
    # bundle.py, which defines it, imports this module.
    name: str = "model.onnx"
    sha256: str
    bytes: int
    opset: dict[str, int]


class GateResult(ContractModel):
    """One promotion gate's verdict and why (shown by ``estate models`` and at training)."""

    name: str
    passed: bool
    detail: str


class Promotion(ContractModel):
    """The gate decision taken when the bundle was written (training's verdict).

    ``decision`` is ``promote`` only if every gate passed; the pointer may still be moved
    by hand later (``estate promote``), which is recorded in the pointer, not here.
    """

    decision: Literal["promote", "hold"]
    reason: str
    champion: str | None = Field(
        None, description="The champion the gates compared against (None: there was none)."
    )
    gates: list[GateResult]


class ExplainerSpec(ContractModel):
    """The optional SHAP tables (``explainer.npz``, numpy arrays only) and what they explain."""

    kind: Literal["linear", "xgboost", "random_forest", "blend"]
    members: dict[str, str] = Field(description="Ensemble member → its explainer kind.")
    file: Literal["explainer.npz"] = "explainer.npz"
    sha256: str
    bytes: int
    scale: Literal["raw", "log_odds"] = Field(
        description="'raw': the graph's raw output (e.g. log price, or the probability of a "
        "random forest); 'log_odds': logit of the raw probability (XGBoost, logistic)."
    )
    base_value: float = Field(description="Expected model output in `scale` (SHAP's base).")
    global_importance: dict[str, float] = Field(
        description="Mean |SHAP| per raw feature over training rows, largest first."
    )
    importance_rows: int
    additivity_max_abs_error: float = Field(
        description="Max |base + Σ SHAP - ONNX output| on the parity rows, in `scale` "
        "(in probability for 'log_odds')."
    )


class FeatureRange(ContractModel):
    """Where training data is dense for one numeric feature (1st to 99th percentile)."""

    feature: str
    p01: float
    p99: float


class ModelCard(ContractModel):
    """The model card (``model_card.md``, Markdown for people) and the facts it states.

    The metrics, gates, interval and parity the card also shows are the manifest's own
    fields; these are the facts only the card adds.
    """

    file: Literal["model_card.md"] = "model_card.md"
    sha256: str
    bytes: int
    data_source: str = Field(description="URI of the training data.")
    data_card: str | None = Field(None, description="The data set's documentation (path).")
    rows: int = Field(description="Rows used (after the row filter, with a target).")
    period: str | None = Field(None, description="Sale period covered, e.g. '2006-01 to 2010-07'.")
    target: str
    target_range: tuple[float, float] | None = Field(
        None, description="Regression: smallest and largest target value."
    )
    positive_rate: float | None = Field(None, description="Classification: share of class 1.")
    interval_by_fifth: list[FifthCoverage] | None = Field(
        None, description="Regression: holdout coverage per fifth of predicted value."
    )
    # A default (copied per instance), not default_factory=list: pydantic inspects a
    # factory's signature, ~1.5 ms of a cold start for the first one.
    training_ranges: list[FeatureRange] = Field([])
    intended_use: str
    limits: list[str]


class ComparablesSpec(ContractModel):
    """The optional table of training sales (``comparables.npz``, numpy arrays, no pickle)
    that `estate.runtime.comparables` searches for the sales most like a house.

    Distance = Σ weight x |standardized difference| over `features` (numbers on the
    model's encoded scale, categories 1 when they differ) + `geo_weight` x km / `geo_km`.
    """

    file: Literal["comparables.npz"] = "comparables.npz"
    sha256: str
    bytes: int
    rows: int = Field(description="Sales in the table.")
    features: dict[str, float] = Field(
        description="Raw feature → weight in the distance (normalised global importance)."
    )
    fields: list[str] = Field(description="Raw columns shown with each sale, in order.")
    id_column: str | None = Field(None, description="Column that identifies a sale (parcel id).")
    date_columns: tuple[str, str | None] | None = Field(
        None, description="(year, month) columns that date a sale."
    )
    geo_columns: tuple[str, str] | None = Field(
        None, description="(latitude, longitude) columns; None: no geography."
    )
    geo_weight: float = Field(0.0, description="Weight of the geographic term.")
    geo_km: float = Field(1.0, description="Kilometres that count as one unit of distance.")
    method: str = Field(description="The similarity in one sentence, for people.")


class Manifest(ContractModel):
    """Everything serving, auditing and retraining need to know about a bundle."""

    format_version: int
    name: str
    version: str
    created_at: datetime
    task: Task
    input: InputSchema
    output: OutputSpec
    candidates: list[CandidateResult]
    chosen: str
    chosen_params: dict[str, Any]
    selection_metric: str
    interval: ConformalInterval | None = None
    threshold: DecisionThreshold | None = None
    drift: DriftReference | None = None
    training: dict[str, Any]
    lineage: Lineage
    model_file: ModelFile
    parity: Parity
    libraries: dict[str, str]
    git_commit: str | None
    config: dict[str, Any]
    promotion: Promotion | None = None
    explainer: ExplainerSpec | None = None
    model_card: ModelCard | None = None
    comparables: ComparablesSpec | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()
