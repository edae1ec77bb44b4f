"""The HTTP API's response shapes as pydantic models: the source of the OpenAPI document.

Request models live next to the code that parses them (`estate.serving.requests`); the
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


class ChatResponse(_Closed):
    reply: str = Field(description="The advisor's answer; every figure in it is in `facts`.")
    facts: dict[str, Any] = Field(
        description="The figures the reply uses (estimate, interval, drivers, analytics)."
    )
    engine: str = Field(description="'local', or 'llm:<model>' when an LLM answered.")
    model: ModelRef


class ModelCardLink(_Closed):
    """Where the serving bundle's model card is (data, metrics, intended use, limits)."""

    file: Literal["model_card.md"]
    url: str = Field(
        description="GET it (Markdown), relative to this host: <function>/model_card.md."
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
    }
    one = create_model("Explanation", __base__=_Closed, **fields)
    answer = create_model(
        "ExplainResponse", __base__=_Closed, explanations=(list[one], ...), model=(ModelRef, ...)
    )
    return one, answer
