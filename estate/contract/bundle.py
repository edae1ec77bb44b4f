"""The bundle contract between training and serving, defined once.

A bundle is an immutable folder in the artifact store::

    models/<name>/<version>/model.onnx     one ONNX graph: preprocessing + model + output
    models/<name>/<version>/manifest.json  `Manifest` below, including model.onnx's sha256
    models/<name>/<version>/explainer.npz  optional: SHAP tables (`ExplainerSpec`,
                                           `EXPLAINER_ARRAYS`), checksummed
    models/<name>/<version>/model_card.md  optional: the model card (`ModelCard`), checksummed
    models/<name>/<version>/comparables.npz  optional: training sales (`ComparablesSpec`)
    models/<name>/serving.json             the serving pointer (`estate.storage.pointer`), last

The ONNX graph always has the same interface, so serving needs nothing but this module:

* inputs ``numeric`` (double ``[N, len(numeric features)]``, NaN = missing) and
  ``categorical`` (string ``[N, len(categorical features)]``), columns in manifest order;
  an input is absent when the data set has no feature of that kind;
* outputs ``prediction`` (float ``[N]``: the target in its own units, or the positive
  class probability) and ``raw`` (float ``[N]``: the model's own scale, e.g. log price);
  a regression graph with an adaptive interval (``interval.adaptive``) has a third,
  ``scale`` (float ``[N]``: the expected size of this row's error, in the raw scale).

Compatibility rule (manifest and serving pointer alike):

1. `FORMAT_VERSION` is a major version. Within it a writer may only **add an optional
   field whose absence means the old behaviour** (a default of None, or the old value),
   and every reader **ignores fields it does not know**. So a bundle written by a newer
   training run still loads in an older deployment of the same major version, and serves
   exactly as it did before the field existed. (An older writer that rewrites a file, e.g.
   ``estate promote`` from an older release, drops the fields it does not know; by the same
   rule that falls back to the old behaviour.)
2. Anything an older reader would misread **bumps the version**: renaming, removing or
   retyping a field, a new required field, a new meaning for an existing one, or a new
   field serving must act on to answer correctly (e.g. a new output transform). Readers
   refuse a version they do not know; the reader of version N keeps reading N-1 for one
   major (an entry in `READERS` that upgrades it to today's `Manifest`).
3. Typos stay out on the write side: writers build these models from named, typed
   arguments, which mypy checks (pydantic plugin, ``init_forbid_extra`` and ``init_typed``
   in pyproject.toml), and the registry reads every manifest back before writing it.

tests/unit/contract/test_compat.py holds a bundle written by the v1 code
(tests/support/bundles/v1/) to keep rule 1 honest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from estate.contract.errors import BundleError

FORMAT_VERSION: Final = 1
MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
EXPLAINER_FILE: Final = "explainer.npz"
MODEL_CARD_FILE: Final = "model_card.md"
COMPARABLES_FILE: Final = "comparables.npz"
POINTER_FILE: Final = "serving.json"

#: The explainer file: numpy arrays only (read with ``allow_pickle=False``), written by
#: `estate.export.shap_tables`, read by `estate.runtime.explainer`. Every file holds these:
#: the encoded columns the tables explain (``encoded_names``, must equal the manifest's
#: input schema), exact linear SHAP (``linear_coef``, ``linear_mean``), the base value,
#: the trees' node tables (``node_*``, ``tree_*``) and their root-to-leaf paths
#: (``path_*``, what TreeSHAP walks).
EXPLAINER_ARRAYS: Final = (
    "encoded_names",
    "linear_coef",
    "linear_mean",
    "base_value",
    "node_feature",
    "node_threshold",
    "node_left",
    "node_right",
    "node_default_left",
    "node_value",
    "node_cover",
    "tree_start",
    "tree_weight",
    "tree_leq",
    "path_feature",
    "path_lower",
    "path_upper",
    "path_zero",
    "path_missing",
    "path_leq",
    "path_value",
    "path_length",
)
#: Optional, by rule 1 below: TreeSHAP's lookup tables solved from the paths at export
#: (keys with this prefix, laid out by `estate.runtime.treeshap.TreePaths.solved_arrays`
#: and tagged with its ``SOLVED_FORMAT``), so loading reads them instead of solving them.
#: A reader that finds none (files written before them) or another layout solves them
#: from the ``path_*`` arrays, with the same result; readers ignore other keys.
EXPLAINER_SOLVED_PREFIX: Final = "solved_"

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
PREDICTION_OUTPUT = "prediction"
RAW_OUTPUT = "raw"
#: Optional third output: the per-row interval scale (`AdaptiveInterval`).
SCALE_OUTPUT = "scale"

# How raw values become the graph's inputs: one rule, which `estate.runtime.packing`
# implements for JSON rows, DataFrames and Arrow tables alike (predict, explain, chat,
# `estate score`, BigQuery's SQL and the training encoder):
# * a number that is null or absent → NaN (the graph imputes the training median);
# * a category's text is stripped, and an integral number is written without a fraction
#   (``60``, ``60.0``, and ``"60.0"`` when that is not a training category → ``"60"``);
# * a missing category -- null, NaN, blank, or ``"NA"`` when ``"NA"`` is not a training
#   category -- becomes `MISSING_CATEGORY` when ``"NA"`` is a training category
#   (training reads an empty cell as ``"NA"``), else the training mode (``impute``);
# * an absent feature (a key a row does not send, a column a file does not have) becomes
#   the training mode;
# * every filled value is reported to callers as "imputed", naming the value used.
# The rule is the reader's, not the format's: bundles are unchanged by it.

#: Category training gives a missing categorical value (the Ames data uses NA too).
MISSING_CATEGORY = "NA"

Task = Literal["regression", "binary_classification"]


def model_prefix(name: str) -> str:
    """Store prefix of every version of the model `name`."""
    return f"models/{name}"


def version_prefix(name: str, version: str) -> str:
    """Store prefix of one immutable bundle."""
    return f"{model_prefix(name)}/{version}"


def pointer_key(name: str) -> str:
    """Store key of the serving pointer of model `name`."""
    return f"{model_prefix(name)}/{POINTER_FILE}"


def new_version(now: datetime | None = None, salt: bytes = b"") -> str:
    """A sortable, unique-enough version id: UTC time plus a short content hash."""
    now = now or datetime.now(UTC)
    digest = hashlib.sha256(salt + now.isoformat().encode()).hexdigest()[:6]
    return now.strftime("v%Y%m%dT%H%M%SZ") + "-" + digest


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`: how every checksum in a manifest is written."""
    return hashlib.sha256(data).hexdigest()


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
    """Base of every bundle-format model: unknown fields are ignored when reading (rule 1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


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
    dropped: list[str] = Field(default_factory=list, description="Columns ignored by the model.")
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
    name: str = MODEL_FILE
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
    training_ranges: list[FeatureRange] = Field(default_factory=list)
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


#: Format version → how a manifest of that version becomes today's `Manifest`. A version
#: bump adds the new reader and keeps the previous one, upgrading, for one major (rule 2).
READERS: dict[int, Callable[[dict[str, Any]], Manifest]] = {
    FORMAT_VERSION: Manifest.model_validate,
}


def check_format_version(found: object, what: str) -> int:
    """The format version of `what` if this code reads it; else a `BundleError` saying why."""
    readable = ", ".join(str(v) for v in sorted(READERS))
    if isinstance(found, int) and not isinstance(found, bool) and found in READERS:
        return found
    if isinstance(found, int) and not isinstance(found, bool) and found > max(READERS):
        raise BundleError(
            f"{what}: format version {found} is not supported: it was written by a newer "
            f"estate-advisor, and this code reads version {readable}. Deploy the release "
            "that wrote it (or a newer one), or re-export the model with this one."
        )
    raise BundleError(
        f"{what}: format version {found!r} is not supported: this code reads version "
        f"{readable}. Deploy a matching estate-advisor release or re-export the model."
    )


def parse_manifest(data: bytes) -> Manifest:
    """Parse and check a manifest, refusing format versions this code does not know."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise BundleError(
            f"{MANIFEST_FILE} is not valid JSON ({exc}); re-export the model."
        ) from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{MANIFEST_FILE} must hold a JSON object; re-export the model.")
    found = check_format_version(raw.get("format_version"), MANIFEST_FILE)
    try:
        return READERS[found](raw)
    except ValidationError as exc:
        raise BundleError(f"{MANIFEST_FILE} does not match format {found}: {exc}") from exc


def _verify_side_file(
    manifest: Manifest,
    spec: ExplainerSpec | ModelCard | ComparablesSpec | None,
    what: str,
    data: bytes,
) -> None:
    """Refuse a side file that is undeclared, truncated or tampered: its size and sha256
    must match the manifest's entry, exactly like the model file."""
    if spec is None:
        raise BundleError(f"{manifest.name}/{manifest.version} declares no {what}.")
    if len(data) != spec.bytes or sha256_hex(data) != spec.sha256:
        raise BundleError(
            f"{spec.file} of {manifest.name}/{manifest.version} has {len(data)} bytes and "
            f"sha256 {sha256_hex(data)}, the manifest says {spec.bytes} and {spec.sha256}: "
            "the file is truncated or altered. Re-export the bundle; it will not be served."
        )


def verify_explainer_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered explainer file."""
    _verify_side_file(manifest, manifest.explainer, "explainer", data)


def verify_card_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered model card."""
    _verify_side_file(manifest, manifest.model_card, "model card", data)


def verify_comparables_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered comparables table."""
    _verify_side_file(manifest, manifest.comparables, "comparables table", data)


def verify_model_bytes(manifest: Manifest, model_bytes: bytes) -> None:
    """Refuse a truncated or tampered model.onnx: size and sha256 must match the manifest."""
    if len(model_bytes) != manifest.model_file.bytes:
        raise BundleError(
            f"{MODEL_FILE} of {manifest.name}/{manifest.version} has {len(model_bytes)} bytes, "
            f"the manifest says {manifest.model_file.bytes}: the bundle is truncated or "
            "half-written. Re-export it; it will not be served."
        )
    digest = sha256_hex(model_bytes)
    if digest != manifest.model_file.sha256:
        raise BundleError(
            f"{MODEL_FILE} of {manifest.name}/{manifest.version} has sha256 {digest}, the "
            f"manifest says {manifest.model_file.sha256}: the file was altered. Re-export it; "
            "it will not be served."
        )
