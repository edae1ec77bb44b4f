"""The HTTP API's response shapes as pydantic models: the source of the OpenAPI document.

Request models live next to the code that parses them (`estate.serving.requests`,
`estate.serving.advice_requests`); the
answers are plain dicts built by each function, described here and checked against these
models by the contract tests (and by schemathesis over real HTTP), so the published
document cannot drift. The output's field name comes from the model (``price`` for
Ames), so the models that carry it are built per output name.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldProblem(_Closed):
    field: str = Field(description="Where: e.g. instances[0].Overall.Qual or messages[1].content.")
    message: str
    type: str = Field(description="Machine-readable error code (pydantic's error type).")


class Problem(_Closed):
    """RFC 9457 problem details, the body of every 4xx/5xx answer."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        None,
        description="One entry per bad field, the first ESTATE_MAX_FIELD_ERRORS (50) of them.",
    )
    errors_omitted: int | None = Field(
        None, description="How many more bad fields were found than `errors` lists."
    )


class ModelRef(_Open):
    """Which bundle answered (name and immutable version)."""

    name: str
    version: str


class InputWarning(_Closed):
    field: str
    code: Literal["imputed", "out_of_range", "unknown_category"]
    message: str


class WarningSummary(_Closed):
    """One kind of warning over a whole batch: which field, how many rows, which ones."""

    field: str
    code: Literal["imputed", "out_of_range", "unknown_category"]
    message: str
    count: int = Field(description="How many instances got this warning.")
    rows: list[int] = Field(
        description="Indices of the first of them (ESTATE_WARNING_ROWS_LISTED, 20)."
    )


class Interval(_Closed):
    lower: float
    upper: float
    level: float = Field(description="Nominal coverage, e.g. 0.9 for a 90% interval.")


class Difference(_Closed):
    """One of a comparable's main differences from the house (its largest distance terms)."""

    feature: str
    label: str | None = Field(None, description="Readable name, when the config gives one.")
    unit: str | None = None
    comparable: float | str | None = Field(description="The comparable sale's value.")
    this: float | str | None = Field(description="This house's value (imputed if not sent).")
    text: str = Field(description="For people: 'Living area 1,710 vs 1,450 sq ft'.")


class ComparableSale(_Closed):
    """A training sale like the house: what it sold for, when, and how it differs."""

    price: float = Field(description="What it sold for (the target, in its units).")
    sale_date: str | None = Field(None, description="'2008-06' (or the year alone).")
    distance: float = Field(
        description="Similarity distance (smaller = more alike): importance-weighted "
        "standardised differences over the model's most important features, plus "
        "great-circle distance when the data has coordinates."
    )
    km: float | None = Field(
        None, description="Great-circle distance; null when the house sent no coordinates."
    )
    id: str | None = Field(None, description="The sale's id in the data (e.g. parcel id).")
    latitude: float | None = None
    longitude: float | None = None
    fields: dict[str, float | str | None] = Field(
        description="The columns the data-set config shows for each sale."
    )
    differences: list[Difference] = Field(
        description="Where it differs most from this house, largest first (up to 3)."
    )


_COMPARABLES: tuple[Any, Any] = (
    list[ComparableSale] | None,
    Field(
        None,
        description='With "parameters": {"comparables": k}: the k most similar training '
        "sales, nearest first.",
    ),
)
_UNAVAILABLE: tuple[Any, Any] = (
    str | None,
    Field(
        None,
        description="Comparables were asked for but this model has none: why (e.g. a "
        "classification model, or a data set without [comparables] columns).",
    ),
)


class ChatResponse(_Closed):
    reply: str = Field(description="The advisor's answer; every figure in it is in `facts`.")
    facts: dict[str, Any] = Field(
        description="The figures the reply uses (estimate, interval, drivers, analytics)."
    )
    engine: str = Field(description="'local', or 'llm:<model>' when an LLM answered.")
    model: ModelRef


class Valuation(_Closed):
    """analyze: the model's price for the house and its interval."""

    price: float
    interval: Interval | None = Field(description="None when the bundle has no interval.")
    warnings: list[InputWarning] = Field(description="Imputed, unseen or out-of-range inputs.")


class Comparables(_Closed):
    """analyze: the most similar training sales, when the bundle carries a sales table."""

    available: bool = Field(description="Whether this bundle has comparable sales at all.")
    sales: list[ComparableSale] = Field(
        description="The k most similar training sales, nearest first (the same search as "
        "predict's parameters.comparables)."
    )
    note: str | None = Field(description="Why there are none, when there are none.")


class DealFigures(_Closed):
    """Every figure of the deal (`estate.runtime.deal`): money in dollars, rates as fractions."""

    loan: float
    monthly_payment: float
    annual_debt_service: float
    operating_expenses: float = Field(description="Per year: taxes, insurance, HOA, upkeep.")
    noi: float = Field(description="Net operating income per year (after vacancy).")
    gross_yield: float
    net_yield: float
    cap_rate: float
    monthly_cash_flow: float
    annual_cash_flow: float
    cash_on_cash: float | None = Field(description="None when under $1 of cash is put in.")
    dscr: float | None = Field(description="Debt service coverage; None without a loan.")
    break_even_rent: float | None = Field(
        description="Monthly rent with zero cash flow; None if vacancy + upkeep take it all."
    )


class DealVerdict(_Closed):
    price: Literal["below", "inside", "above"] | None = Field(
        description="The asking price against the model's interval; None without one."
    )
    asking_vs_estimate: float | None = Field(description="(asking - estimate) / estimate.")
    cash_flow: Literal["positive", "negative", "break_even"]
    summary: str


class TermUsed(_Closed):
    """One deal term as used: in the request's unit, given or defaulted (and by what rule)."""

    value: float
    unit: str
    source: Literal["given", "default"]
    basis: str = Field(description="'given', or the default's rule (e.g. '20% of the price').")


class TermWarning(_Closed):
    field: str
    code: Literal["percent_under_one"]
    message: str


class DealAnswer(_Closed):
    analysis: DealFigures
    verdict: DealVerdict
    assumptions: dict[str, TermUsed] = Field(description="Every term, by its request name.")
    warnings: list[TermWarning]


class AnalyzeResponse(_Closed):
    valuation: Valuation
    comparables: Comparables
    deal: DealAnswer
    model: ModelRef


class ModelCardLink(_Closed):
    """Where the serving bundle's model card is (data, metrics, intended use, limits)."""

    file: Literal["model_card.md"]
    url: str = Field(
        description="GET it (Markdown): a relative reference (RFC 3986) to resolve against "
        "the URL you sent this GET to: ./predict/model_card.md, so https://<gateway>/predict "
        "→ https://<gateway>/predict/model_card.md; ./model_card.md on a URL ending in /."
    )
    sha256: str
    bytes: int


class Health(_Open):
    """GET on a function: health, the serving model, the input schema and the model card."""

    status: Literal["ok"]
    model: ModelRef
    model_card: ModelCardLink | None = Field(
        None, description="None for a bundle trained before bundles carried a model card."
    )


@lru_cache(maxsize=8)
def prediction_models(output: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """(one prediction, the predict answer) for a model whose output is named `output`."""
    fields: dict[str, Any] = {
        output: (float, Field(description="The estimate (or the positive class probability).")),
        "interval": (Interval | None, Field(None, description="Regression only.")),
        "label": (str | None, Field(None, description="Classification only.")),
        "threshold": (float | None, Field(None, description="Classification only.")),
        "warnings": (
            list[InputWarning] | None,
            Field(
                None,
                description="Requests of at most ESTATE_ROW_WARNINGS_MAX_INSTANCES (100) "
                "instances: this instance's warnings. Larger batches: absent, see "
                "`warning_summary`.",
            ),
        ),
        "comparables": _COMPARABLES,
    }
    one = create_model("Prediction", __base__=_Closed, **fields)
    summary: tuple[Any, Any] = (
        list[WarningSummary] | None,
        Field(
            None,
            description="Batches above ESTATE_ROW_WARNINGS_MAX_INSTANCES (100) instances: "
            "one entry per field and warning code instead of warnings on every prediction.",
        ),
    )
    answer = create_model(
        "PredictResponse",
        __base__=_Closed,
        predictions=(list[one], ...),
        comparables_unavailable=_UNAVAILABLE,
        warning_summary=summary,
        model=(ModelRef, ...),
    )
    return one, answer


class Contribution(_Closed):
    feature: str
    label: str | None = Field(None, description="Readable name, when the config gives one.")
    unit: str | None = Field(None, description="Unit of `value`, when the config gives one.")
    value: float | str | None = Field(description="The value used (after imputation).")
    formula: str | None = Field(
        None, description="A derived feature (computed by the model, not sent): its formula."
    )
    inputs: list[str] | None = Field(None, description="A derived feature: the fields it reads.")
    imputed: bool | None = None
    shap: float = Field(description="SHAP value in the explained scale (see `scale`).")
    factor: float | None = Field(None, description="Log-target models: exp(shap).")
    effect: float | None = Field(None, description="Effect in output units (e.g. dollars).")


class OtherFeatures(_Closed):
    features: int
    shap: float
    effect: float | None = None
    factor: float | None = None


@lru_cache(maxsize=8)
def explanation_models(output: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """(one explanation, the explain answer) for a model whose output is named `output`."""
    base_fields: dict[str, Any] = {
        "shap": (float, Field(description="Expected output in the explained scale.")),
        output: (float | None, Field(None, description="The base in output units.")),
    }
    base = create_model("BaseValue", __base__=_Closed, **base_fields)
    fields: dict[str, Any] = {
        output: (float, ...),
        "base_value": (base, ...),
        "scale": (str, Field(description="What base + Σ shap adds up to, e.g. log(price).")),
        "contributions": (list[Contribution], ...),
        "other_features": (OtherFeatures | None, None),
        "warnings": (list[InputWarning], ...),
        "comparables": _COMPARABLES,
    }
    one = create_model("Explanation", __base__=_Closed, **fields)
    answer = create_model(
        "ExplainResponse",
        __base__=_Closed,
        explanations=(list[one], ...),
        comparables_unavailable=_UNAVAILABLE,
        model=(ModelRef, ...),
    )
    return one, answer
