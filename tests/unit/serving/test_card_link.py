"""The model card link of every function's GET, followed as a caller would: on the
function's own URL and through API Gateway, whose routing is played here from the
committed infra/openapi.yaml by the rule Google documents for `x-google-backend`
(google.api.BackendRule.PathTranslation):

- CONSTANT_ADDRESS: "Use the backend address as-is, with no modification to the path"
  (an empty address path is sent as ``/``);
- APPEND_PATH_TO_ADDRESS: "The request path will be appended to the backend address."

A route the document does not declare is a 404 at the gateway, so a link resolving to
one is broken for every caller behind it. Not covered, because no reference can be right
there: a direct GET on a Cloud Functions URL whose host strips the function's name
reaches the function as ``/``, indistinguishable from Cloud Run's root.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import yaml
from conftest import function_client as client
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from estate.serving.endpoint import card_reference

REPO = Path(__file__).resolve().parents[3]
FUNCTIONS = ("predict", "explain", "chat", "analyze")
GATEWAY = "https://estate-gw-abc123.uc.gateway.dev"
#: What Terraform may hand the gateway as a function's URL, and how that host routes a
#: path to the function: Cloud Run's own URL passes the path as it is; a Cloud Functions
#: URL carries the function's name, which reaches the function (kept) or not (stripped).
ADDRESSES = {
    "run.app": ("https://estate-{function}-xyz-uc.a.run.app", None),
    "cloudfunctions.net, name kept": (
        "https://us-central1-proj.cloudfunctions.net/estate-{function}",
        "kept",
    ),
    "cloudfunctions.net, name stripped": (
        "https://us-central1-proj.cloudfunctions.net/estate-{function}",
        "stripped",
    ),
}


def seen_by_function(form: str, function: str, url_path: str) -> str | None:
    """The path the function receives for `url_path` on its host (None: not this function)."""
    name = ADDRESSES[form][1]
    if name is None:
        return url_path
    prefix = f"/estate-{function}"
    if url_path != prefix and not url_path.startswith(prefix + "/"):
        return None
    return url_path if name == "kept" else url_path.removeprefix(prefix) or "/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "infra" / "openapi.yaml").read_text())
    return doc


@pytest.fixture
def clients(serving_env: pytest.MonkeyPatch, ames_store: Path) -> dict[str, FlaskClient]:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return {name: client(name) for name in FUNCTIONS}


def via_gateway(
    document: dict[str, Any], clients: dict[str, FlaskClient], url: str, form: str = "run.app"
) -> TestResponse | None:
    """GET `url` on the gateway (None: a 404 from the gateway or the function's host)."""
    assert url.startswith(GATEWAY + "/"), url
    path = urlsplit(url).path
    operation = document["paths"].get(path, {}).get("get")
    if operation is None:
        return None
    backend = operation["x-google-backend"]
    function = backend["address"].removeprefix("${").partition("_url}")[0]
    address = ADDRESSES[form][0].format(function=function)
    target = urlsplit(backend["address"].replace("${" + function + "_url}", address))
    # An operation-level x-google-backend without path_translation is CONSTANT_ADDRESS.
    if backend.get("path_translation", "CONSTANT_ADDRESS") == "APPEND_PATH_TO_ADDRESS":
        backend_url_path = target.path.rstrip("/") + path
    else:
        backend_url_path = target.path or "/"
    seen = seen_by_function(form, function, backend_url_path)
    return None if seen is None else clients[function].get(seen)


def follow(info: dict[str, Any], called: str) -> str:
    """The card's URL as a caller resolves the link against the URL it called."""
    link = info["model_card"]
    assert link is not None
    assert link["file"] == "model_card.md"
    return urljoin(called, link["url"])


def is_the_card(answer: TestResponse | None, info: dict[str, Any]) -> bool:
    return (
        answer is not None
        and answer.status_code == 200
        and answer.headers["Content-Type"].startswith("text/markdown")
        and hashlib.sha256(answer.data).hexdigest() == info["model_card"]["sha256"]
        and len(answer.data) == info["model_card"]["bytes"]
    )


@pytest.mark.parametrize("form", ["run.app", "cloudfunctions.net, name kept"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_card_link_resolves_on_the_functions_own_url(
    clients: dict[str, FlaskClient], function: str, form: str
) -> None:
    called = ADDRESSES[form][0].format(function=function)
    called += "/" if form == "run.app" else ""
    seen = seen_by_function(form, function, urlsplit(called).path)
    assert seen is not None
    info = clients[function].get(seen).get_json()
    card = follow(info, called)
    assert card == called.rstrip("/") + "/model_card.md"
    card_seen = seen_by_function(form, function, urlsplit(card).path)
    assert card_seen is not None
    assert is_the_card(clients[function].get(card_seen), info)


@pytest.mark.parametrize("form", list(ADDRESSES))
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_card_link_resolves_through_the_gateway(
    document: dict[str, Any], clients: dict[str, FlaskClient], function: str, form: str
) -> None:
    called = f"{GATEWAY}/{function}"
    health = via_gateway(document, clients, called, form)
    assert health is not None
    assert health.status_code == 200
    info = health.get_json()
    card = follow(info, called)
    assert card == f"{GATEWAY}/{function}/model_card.md"
    assert is_the_card(via_gateway(document, clients, card, form), info)


def test_the_reference_is_relative_to_the_last_segment_the_function_saw() -> None:
    assert card_reference("/") == "./model_card.md"
    assert card_reference("/predict") == "./predict/model_card.md"
    assert card_reference("/predict/") == "./model_card.md"
    assert card_reference("/estate-predict/predict") == "./predict/model_card.md"
    # A segment that would read as a scheme or holds a space stays one path segment.
    assert card_reference("/a:b c") == "./a:b%20c/model_card.md"
    assert urljoin("https://h/x/a:b%20c", card_reference("/a:b c")) == (
        "https://h/x/a:b%20c/model_card.md"
    )


def test_with_the_operation_default_the_link_would_miss_the_gateways_route(
    document: dict[str, Any], clients: dict[str, FlaskClient]
) -> None:
    """What the document's explicit path_translation prevents: with CONSTANT_ADDRESS the
    function sees ``/`` and links ``/model_card.md``, which the gateway has no route for."""
    constant = yaml.safe_load(yaml.safe_dump(document))
    for item in constant["paths"].values():
        for operation in item.values():
            operation["x-google-backend"].pop("path_translation")
    info = via_gateway(constant, clients, f"{GATEWAY}/predict")
    assert info is not None
    card = follow(info.get_json(), f"{GATEWAY}/predict")
    assert card == f"{GATEWAY}/model_card.md"
    assert via_gateway(constant, clients, card) is None
