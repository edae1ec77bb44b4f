"""Offline checks of infra/ (Terraform), least privilege: no public invoker unless asked,
one service account per role, the LLM key for chat only, private buckets, and storage
access granted per bucket, never per project."""

from __future__ import annotations

import json
import re

import pytest
from terraform_config import HTTP_FUNCTIONS, Terraform, load_terraform


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def test_no_public_invoker_unless_a_variable_asks(tf: Terraform) -> None:
    assert tf.variables["public_functions"]["default"] == []
    public = [
        address
        for address, body in tf.resources.items()
        if re.search(r"\ball(Authenticated)?Users\b", json.dumps(body))
    ]
    assert public == ["google_cloud_run_v2_service_iam_member.public"]
    body = tf.resource(public[0])
    assert body["for_each"] == "${toset(var.public_functions)}"
    assert body["member"] == "allUsers"


def test_the_llm_key_reaches_chat_only(tf: Terraform) -> None:
    http = tf.resource("google_cloudfunctions2_function.http")
    secret_env = http["service_config"][0]["dynamic"][0]["secret_environment_variables"]
    assert secret_env["for_each"].startswith('${each.key == "chat" && var.enable_llm ?')
    assert "google_secret_manager_secret.llm_api_key" in secret_env["for_each"]
    assert "secret_environment_variables" not in json.dumps(
        tf.resource("google_cloudfunctions2_function.retrain")
    )
    accessors = [
        body
        for body in tf.resources.values()
        if body.get("role") == "roles/secretmanager.secretAccessor"
    ]
    assert len(accessors) == 1
    assert accessors[0]["member"] == '${local.sa["chat"]}'
    assert accessors[0]["secret_id"] == "${google_secret_manager_secret.llm_api_key.id}"
    assert tf.variables["enable_llm"]["default"] is False


def test_one_service_account_per_role(tf: Terraform) -> None:
    roles = set(tf.locals["service_accounts"])
    assert {"trainer", "predict", "explain", "chat", "retrain", "scheduler", "builder"} <= roles
    assert "deployer" in roles  # runs cloudbuild.yaml
    sa = tf.resource("google_service_account.sa")
    assert sa["for_each"] == "${local.service_accounts}"


def test_buckets_are_private_uniform_and_versioned(tf: Terraform) -> None:
    buckets = tf.of_type("google_storage_bucket")
    assert {a.split(".")[1] for a in buckets} >= {"artifacts", "data", "source", "logs"}
    for address, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, address
        assert body["public_access_prevention"] == "enforced", address
        assert body["versioning"][0]["enabled"] is True, address
    # Age rules on the artifacts bucket touch job outputs only, never bundles or pointers.
    artifacts = tf.resource("google_storage_bucket.artifacts")
    rules = [d["lifecycle_rule"] for d in artifacts["dynamic"]]
    for rule in rules:
        condition = rule["content"][0]["condition"][0]
        if "age" in condition:
            assert "/jobs/" in json.dumps(condition["matches_prefix"])
        else:
            assert condition["with_state"] == "ARCHIVED"  # noncurrent generations only
    assert len(rules) == 2


BROAD_ROLES = {"roles/owner", "roles/editor", "roles/viewer", "roles/storage.admin"}


def test_storage_and_secret_access_is_granted_per_bucket_not_per_project(tf: Terraform) -> None:
    grants = tf.locals["bucket_grants"]
    readers = {g["member"] for g in grants.values() if "artifacts" in g["bucket"]}
    for fn in HTTP_FUNCTIONS:
        assert f'${{local.sa["{fn}"]}}' in readers
    for grant in grants.values():
        assert grant["role"] in {
            "roles/storage.objectViewer",
            "roles/storage.objectUser",
            "roles/storage.objectCreator",
        }
        # Serving identities only ever read.
        if any(f'"{fn}"' in grant["member"] for fn in HTTP_FUNCTIONS):
            assert grant["role"] == "roles/storage.objectViewer"
    project_roles = [g["role"] for g in tf.locals["project_grants"].values()]
    assert not set(project_roles) & BROAD_ROLES
    assert not any(r.startswith(("roles/storage.", "roles/secretmanager.")) for r in project_roles)
    # The pipeline writes nothing to any bucket (it pushes the training image instead).
    assert not [g for g in tf.locals["bucket_grants"].values() if '"deployer"' in g["member"]], (
        "the deployer needs no bucket access"
    )
    assert not [
        address
        for address, body in tf.of_type("google_storage_bucket_iam_member").items()
        if '"deployer"' in body["member"]
    ]
    # The one project-level storage grant is fenced by a condition to Google's source buckets.
    conditional = tf.resource("google_project_iam_member.read_managed_sources")
    assert conditional["role"] == "roles/storage.objectViewer"
    assert "gcf-v2-sources-" in conditional["condition"][0]["expression"]
