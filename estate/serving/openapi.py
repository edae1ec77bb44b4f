"""One OpenAPI document for predict, explain, chat and analyze, from the pydantic models.

Each function serves it at ``GET /openapi.json`` with the loaded model's own instance
schema (every feature, its range or categories); ``estate openapi`` writes the Swagger 2.0
form API Gateway needs to ``infra/openapi.yaml`` from the generic instance schema, so the
file depends only on the code and the data-set config and CI can check it is current.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from estate.serving import responses as contract
from estate.serving.advice_requests import AnalyzeRequest, ChatRequest
from estate.serving.requests import ExplainRequest, PredictRequest

API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

#: Any instance, when no model's schema is at hand: feature name → number, text or null.
GENERIC_INSTANCE: dict[str, Any] = {
    "title": "Instance",
    "type": "object",
    "description": "Raw features by name (GET a function for this model's list and ranges). "
    "Missing features are imputed and reported in `warnings`.",
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
}


@dataclass(frozen=True)
class Operation:
    """One function as the API exposes it: a path with GET (health) and POST."""

    function: str
    summary: str
    description: str
    request: type[BaseModel]
    response: type[BaseModel]
    errors: tuple[int, ...]


def operations(output: str) -> list[Operation]:
    """The HTTP functions, for a model whose output field is named `output`."""
    return [
        Operation(
            "predict",
            "Estimate values",
            f"Each instance's `{output}`, with a conformal interval (regression) or a label "
            "(classification), and warnings about imputed, unseen or out-of-range inputs: "
            "per prediction for up to 100 instances (ESTATE_ROW_WARNINGS_MAX_INSTANCES), "
            "one `warning_summary` per request for larger batches. Limits (413 above them): "
            "5,000 instances (ESTATE_MAX_INSTANCES), 8 MB and 500,000 JSON values per body; "
            "a body must arrive within 10 s (408). "
            '`"parameters": {"comparables": k}` (0 to 20) adds the k most similar training '
            "sales to each prediction: price, sale date, distance and main differences, "
            "by an importance-weighted distance over the model's most important features "
            "(numbers standardised on the model's scale, categories 1 when they differ, "
            "weights = normalised mean |SHAP|) plus great-circle distance when the data has "
            "coordinates; features an instance does not send are left out of its distance. "
            "A model without comparables answers 200 without them and says why "
            "in `comparables_unavailable`; at most 500 instances may ask for them "
            "(ESTATE_COMPARABLES_MAX_INSTANCES; 413 above). Batches may be sent column by column "
            '(`{"inputs": {feature: [v0, v1, ...]}}`): the same checks and predictions in '
            "about a quarter of the JSON.",
            PredictRequest,
            contract.prediction_models(output)[1],
            (400, 408, 413, 415, 422, 503),
        ),
        Operation(
            "explain",
            "Explain estimates",
            "Exact SHAP contributions per raw feature (TreeSHAP / linear SHAP from the bundle) "
            "that add up, with the base value, to the served output. At most 200 instances "
            "per request (ESTATE_EXPLAIN_MAX_INSTANCES; 413 above). Takes predict's "
            '`"parameters": {"comparables": k}` and adds the same comparable sales.',
            ExplainRequest,
            contract.explanation_models(output)[1],
            (400, 408, 413, 415, 422, 501, 503),
        ),
        Operation(
            "chat",
            "Ask the investment advisor",
            "A stateless conversation (send the history): valuation, drivers, deal analysis, "
            "rent and what-if questions, answered from the model and the analytics.",
            ChatRequest,
            contract.ChatResponse,
            (400, 408, 413, 415, 503),
        ),
        Operation(
            "analyze",
            "Analyze a deal",
            "One house (a predict instance) and the deal's terms → the valuation and its "
            "interval, comparable sales (when the bundle carries them) and the deal worked "
            "out: yields, cap rate, NOI, cash flow, DSCR, cash-on-cash, break-even rent, a "
            "verdict, and every term used, marked given or default. Terms left out take "
            "their documented defaults (ESTATE_DEAL_*). The same analytics as chat's deal "
            "answers. Needs a price (regression) model: a classification bundle answers "
            "501. Bodies over 64 kB (ESTATE_ANALYZE_MAX_REQUEST_BYTES) → 413.",
            AnalyzeRequest,
            contract.AnalyzeResponse,
            (400, 408, 413, 415, 422, 501, 503),
        ),
    ]


def openapi_document(output: str, instance: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAPI 3.1 for the functions (paths /predict, /explain, /chat, /analyze, and each
    function's ``/<function>/model_card.md``)."""
    ops = operations(output)
    models: list[type[BaseModel]] = [contract.Problem, contract.Health]
    for op in ops:
        models += [op.request, op.response]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})
    schemas["Instance"] = copy.deepcopy(instance or GENERIC_INSTANCE)
    schemas["Instance"].pop("$defs", None)
    instance_ref = {"$ref": REF.format(model="Instance")}
    schemas["ExplainRequest"]["properties"]["instances"]["items"] = instance_ref
    schemas["PredictRequest"]["properties"] |= predict_properties(
        schemas["PredictRequest"]["properties"], instance_ref
    )
    schemas["ChatRequest"]["properties"]["property"] = {
        "anyOf": [instance_ref, {"type": "null"}],
        "description": "Raw features you know; the rest are imputed.",
    }
    schemas["AnalyzeRequest"]["properties"]["property"] = {
        **instance_ref,
        "description": "The house: raw features as one predict instance; the rest are imputed.",
    }
    paths: dict[str, Any] = {}
    for op in ops:
        paths[f"/{op.function}"] = _path(op)
        paths[f"/{op.function}{CARD_PATH}"] = _card_path(op.function)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "estate-advisor",
            "version": API_VERSION,
            "description": "Real-estate valuation, explanation and investment advice from one "
            "versioned ONNX bundle. Errors are RFC 9457 problem+json naming every bad field.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


#: Every function serves the bundle's model card below its own path (endpoint.CARD_PATH).
CARD_PATH = "/model_card.md"
PROBLEM = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
}


def _card_path(function: str) -> dict[str, Any]:
    """``GET /<function>/model_card.md``: the serving bundle's model card, as Markdown."""
    return {
        "get": {
            "operationId": f"{function}_model_card",
            "summary": f"{function}: the serving model's card (Markdown)",
            "description": "Data, metrics, gates, intervals, intended use and limits of the "
            "bundle this function serves. 404 for a bundle trained before cards existed.",
            "responses": {
                "200": {
                    "description": "The model card",
                    "content": {"text/markdown": {"schema": {"type": "string"}}},
                },
                "404": PROBLEM,
                "503": PROBLEM,
            },
        }
    }


#: A cell of the columnar form: what an instance's value may be.
CELL: dict[str, Any] = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}


def predict_properties(generated: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    """predict's two body forms as callers see them (pydantic writes each as "array or
    null", since either may be left out): rows of `instance`, or one array per feature."""
    return {
        "instances": {
            "type": "array",
            "minItems": 1,
            "items": instance,
            "title": "Instances",
            "description": generated["instances"]["description"],
        },
        "inputs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "array", "minItems": 1, "items": CELL},
            "title": "Inputs",
            "description": generated["inputs"]["description"],
        },
    }


def _path(op: Operation) -> dict[str, Any]:
    problem = PROBLEM
    post_responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=op.response.__name__)}}
            },
        }
    }
    post_responses |= {str(code): problem for code in op.errors}
    return {
        "get": {
            "operationId": f"{op.function}_health",
            "summary": f"{op.function}: health, model and input schema",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="Health")}}
                    },
                },
                "503": problem,
            },
        },
        "post": {
            "operationId": op.function,
            "summary": op.summary,
            "description": op.description,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=op.request.__name__)}}
                },
            },
            "responses": post_responses,
        },
    }
