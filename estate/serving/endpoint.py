"""What every model-backed HTTP function shares: routing to a version, the answer's
version header, and the API document at ``GET /openapi.json``.

An entry point is then one call: ``serve(request, describe, answer, settings, max_bytes)``,
with the settings its function read once (estate/serving/settings.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import flask

from estate.runtime.serving_model import ServingModel
from estate.serving.http import handle, read_json_body
from estate.serving.problems import HttpError
from estate.serving.settings import EndpointSettings
from estate.serving.versions import answered_by, model_for

OPENAPI_PATH = "/openapi.json"
#: ``GET <function>/model_card.md``: the serving bundle's model card, as Markdown.
CARD_PATH = "/model_card.md"


def serve(
    request: flask.Request,
    describe: Callable[[ServingModel], Any],
    answer: Callable[[ServingModel, flask.Request, Any], Any],
    settings: EndpointSettings,
    max_bytes: int,
) -> flask.Response:
    """GET → `describe` (or the OpenAPI document), POST → `answer` on the parsed body
    of at most `max_bytes` (the function's own limit).

    The model is chosen per request (champion, canary or the version pinned by a header)
    and the response names the version that answered.
    """
    chosen: list[ServingModel] = []

    def model() -> ServingModel:
        chosen.append(model_for(request, settings))
        return chosen[-1]

    def on_get() -> Any:
        path = request.path.rstrip("/")
        if path.endswith(OPENAPI_PATH):
            return openapi_for(model())
        if path.endswith(CARD_PATH):
            return model_card(model())
        info = describe(model())
        if isinstance(info, dict):
            info["model_card"] = card_link(model(), request.path)
        return info

    def on_post(r: flask.Request) -> Any:
        body = read_json_body(r, max_bytes, settings)  # first: the read deadline runs from arrival
        return answer(model(), r, body)

    response = handle(request, on_get=on_get, on_post=on_post, settings=settings)
    return answered_by(response, chosen[-1] if chosen else None)


def card_link(model: ServingModel, path: str) -> dict[str, Any] | None:
    """Where the GET answer's reader finds the model card (None: an older bundle has none)."""
    card = model.manifest.model_card
    if card is None:
        return None
    return {
        "file": card.file,
        "url": card_reference(path),
        "sha256": card.sha256,
        "bytes": card.bytes,
    }


def card_reference(path: str) -> str:
    """The card as a relative reference (RFC 3986) from the URL of a GET whose path the
    function saw as `path`: ``./predict/model_card.md`` for ``/predict``,
    ``./model_card.md`` for ``/`` or ``/predict/``.

    Relative, because what a caller wrote before that last segment may never reach the
    function: behind the API gateway the function sees ``/predict`` (its backends append
    the request path, infra/openapi.yaml) or, on a Cloud Functions URL that keeps the
    function's name in the path, ``/estate-predict/predict``; either way the reference
    resolves against the caller's ``https://<gateway>/predict`` to the gateway's route
    ``/predict/model_card.md``. On the function's own URL it resolves below that URL, and
    the function serves the card at any path ending in ``/model_card.md``.
    """
    last = quote(path.rsplit("/", 1)[-1], safe="!$&'()*+,;=:@~")
    return f"./{last}{CARD_PATH}" if last else f".{CARD_PATH}"


def model_card(model: ServingModel) -> flask.Response:
    """The card as Markdown; 404 for a bundle trained before cards existed."""
    if model.card_text is None:
        raise HttpError(
            404,
            "No model card",
            f"{model.manifest.name}/{model.manifest.version} was trained before bundles "
            "carried a model card; retrain it to get one.",
            "no-model-card",
        )
    return flask.Response(model.card_text, mimetype="text/markdown")


def openapi_for(model: ServingModel) -> dict[str, Any]:
    """The API document with this model's output name and its exact instance schema."""
    from estate.contract.instances import instance_json_schema
    from estate.serving.openapi import openapi_document

    return openapi_document(model.manifest.output.name, instance_json_schema(model.adapter))
