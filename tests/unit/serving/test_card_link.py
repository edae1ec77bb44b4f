"""The model card link of every function's GET, followed as a caller would: on the
function's own URL and through API Gateway, whose routing is played here from the
committed infra/openapi.yaml by the rule Google documents for `x-google-backend`
(google.api.BackendRule.PathTranslation):

- CONSTANT_ADDRESS: "Use the backend address as-is, with no modification to the path"
  (an empty address path is sent as ``/``);
- APPEND_PATH_TO_ADDRESS: "The request path will be appended to the backend address."

A route the document does not declare is a 404 at the gateway, so a link resolving to
one is broken for every caller behind it.
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

REPO = Path(__file__).resolve().parents[3]
FUNCTIONS = ("predict", "explain", "chat", "analyze")
GATEWAY = "https://estate-gw-abc123.uc.gateway.dev"
#: A Cloud Functions (2nd gen) URL has no path: the Cloud Run service's own host.
FUNCTION_URL = "https://estate-{function}-xyz-uc.a.run.app"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "infra" / "openapi.yaml").read_text())
    return doc


@pytest.fixture
def clients(serving_env: pytest.MonkeyPatch, ames_store: Path) -> dict[str, FlaskClient]:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return {name: client(name) for name in FUNCTIONS}


def backend_path(document: dict[str, Any], path: str) -> tuple[str, str] | None:
    """(function, path the function receives) for a GET on the gateway; None: no route."""
    operation = document["paths"].get(path, {}).get("get")
    if operation is None:
        return None
    backend = operation["x-google-backend"]
    function = backend["address"].removeprefix("${").partition("_url}")[0]
    address = urlsplit(backend["address"].replace("${" + function + "_url}", FUNCTION_URL))
    # An operation-level x-google-backend without path_translation is CONSTANT_ADDRESS.
    if backend.get("path_translation", "CONSTANT_ADDRESS") == "APPEND_PATH_TO_ADDRESS":
        return function, address.path + path
    return function, address.path or "/"


def via_gateway(
    document: dict[str, Any], clients: dict[str, FlaskClient], url: str
) -> TestResponse | None:
    """GET `url` on the gateway (None: the gateway answers 404, no such route)."""
    assert url.startswith(GATEWAY + "/"), url
    route = backend_path(document, urlsplit(url).path)
    if route is None:
        return None
    function, path = route
    return clients[function].get(path)


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


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_card_link_resolves_on_the_functions_own_url(
    clients: dict[str, FlaskClient], function: str
) -> None:
    base = FUNCTION_URL.format(function=function) + "/"
    info = clients[function].get("/").get_json()
    card = follow(info, base)
    assert card == base + "model_card.md"
    assert is_the_card(clients[function].get(urlsplit(card).path), info)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_card_link_resolves_through_the_gateway(
    document: dict[str, Any], clients: dict[str, FlaskClient], function: str
) -> None:
    called = f"{GATEWAY}/{function}"
    health = via_gateway(document, clients, called)
    assert health is not None
    assert health.status_code == 200
    info = health.get_json()
    card = follow(info, called)
    assert card == f"{GATEWAY}/{function}/model_card.md"
    assert is_the_card(via_gateway(document, clients, card), info)


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
