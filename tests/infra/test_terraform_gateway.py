"""Offline checks of infra/ (Terraform) and infra/openapi.yaml, the API gateway: off by
default, API keys in a header only, a per-consumer quota on every operation, no public
function behind it, and the web page's key limited to its origins and this API."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from terraform_config import HTTP_FUNCTIONS, INFRA, Terraform, load_terraform


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def test_api_gateway_is_off_by_default_and_reads_the_openapi_path(tf: Terraform) -> None:
    assert tf.variables["enable_api_gateway"]["default"] is False
    assert tf.locals["gateway_count"] == "${var.enable_api_gateway ? 1 : 0}"
    for address in ("google_api_gateway_api.api", "google_api_gateway_api_config.api"):
        body = tf.resource(address)
        assert body["provider"] == "google-beta"
        assert body["count"] == "${local.gateway_count}"
    config = json.dumps(tf.resource("google_api_gateway_api_config.api"))
    assert "var.openapi_path" in config
    keys = tf.resource("google_apikeys_key.partner")
    assert "var.enable_api_gateway" in keys["for_each"]


def gateway_document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((INFRA / "openapi.yaml").read_text())
    return doc


def gateway_operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def test_gateway_reads_api_keys_from_a_header_never_the_query_string() -> None:
    doc = gateway_document()
    schemes = doc["securityDefinitions"]
    assert schemes == {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}
    assert doc["security"] == [{"api_key": []}]
    for where, op in gateway_operations(doc).items():
        assert "security" not in op, f"{where} overrides the key requirement"
        for parameter in op.get("parameters", []):
            assert parameter["in"] != "query", f"{where} takes a query parameter"
    text = (INFRA / "openapi.yaml").read_text()
    assert "in: query" not in text


def test_every_gateway_operation_counts_against_a_per_consumer_quota(tf: Terraform) -> None:
    doc = gateway_document()
    management = doc["x-google-management"]
    metrics = {m["name"] for m in management["metrics"]}
    limited: dict[str, str] = {}
    for limit in management["quota"]["limits"]:
        assert limit["metric"] in metrics
        # Per minute, per consumer project: the project the API key belongs to.
        assert limit["unit"] == "1/min/{project}"
        limited[limit["metric"]] = limit["values"]["STANDARD"]
    assert set(limited) == metrics
    operations = gateway_operations(doc)
    # GET (health), POST and GET <fn>/model_card.md on each of the four HTTP functions
    assert len(operations) == 3 * len(HTTP_FUNCTIONS)
    for function in HTTP_FUNCTIONS:
        card = operations[f"GET /{function}/model_card.md"]
        assert card["x-google-backend"] == {
            "address": "${" + function + "_url}",
            "path_translation": "APPEND_PATH_TO_ADDRESS",  # the function sees /<fn>/model_card.md
            "deadline": card["x-google-backend"]["deadline"],
        }
    for where, op in operations.items():
        costs = op["x-google-quota"]["metricCosts"]
        function = where.split("/")[1]
        assert costs == {f"{function}-requests": 1}, where
        assert limited[f"{function}-requests"] == "${" + function + "_quota}"
    # Terraform fills every quota from var.gateway_quotas, one number per function.
    config = json.dumps(tf.resource("google_api_gateway_api_config.api"))
    for function in HTTP_FUNCTIONS:
        assert f'var.gateway_quotas[\\"{function}\\"]' in config, function
        assert f'google_cloudfunctions2_function.http[\\"{function}\\"].url' in config, function
    defaults = tf.variables["gateway_quotas"]["default"]
    assert set(defaults) == set(HTTP_FUNCTIONS)
    assert all(isinstance(v, int) and v >= 1 for v in defaults.values())
    # Every ${...} in the document is a template variable the gateway config passes.
    filled = set(re.findall(r"^\s*(\w+)\s*=", tf.files["gateway.tf"], flags=re.M))
    used = set(re.findall(r"\$\{(\w+)\}", (INFRA / "openapi.yaml").read_text()))
    assert used <= filled, used - filled


def test_behind_the_gateway_no_function_is_invocable_by_all_users(tf: Terraform) -> None:
    # The only allUsers grant is driven by public_functions (empty by default) ...
    assert tf.variables["public_functions"]["default"] == []
    # ... and the gateway refuses to be created while any function is public.
    gateway = tf.resource("google_api_gateway_gateway.api")
    conditions = [p["condition"] for p in gateway["lifecycle"][0]["precondition"]]
    assert conditions == ["${length(var.public_functions) == 0}"]
    # The gateway calls the functions as its own identity.
    config = tf.resource("google_api_gateway_api_config.api")
    backend = config["gateway_config"][0]["backend_config"][0]
    assert backend["google_service_account"] == '${google_service_account.sa["gateway"].email}'
    # Invokers: the deployer (smoke tests), the gateway when enabled, and var.invokers.
    members = re.findall(r"member = ([^}]+)\}", tf.locals["invoker_pairs"])
    assert members == ['local.sa["deployer"]', 'local.sa["gateway"]', "pair[1]"]


def test_the_web_page_key_works_only_from_its_origins_and_only_on_this_api(
    tf: Terraform,
) -> None:
    key = tf.resource("google_apikeys_key.web")
    assert "var.enable_api_gateway" in key["count"]
    assert "var.web_origins" in key["count"]
    restrictions = key["restrictions"][0]
    referrers = restrictions["browser_key_restrictions"][0]["allowed_referrers"]
    assert "var.web_origins" in referrers
    target = restrictions["api_targets"][0]["service"]
    assert target == "${google_api_gateway_api.api[0].managed_service}"
    partner = tf.resource("google_apikeys_key.partner")
    assert partner["restrictions"][0]["api_targets"][0]["service"] == target
    assert tf.outputs["web_api_key"]["sensitive"] is True
