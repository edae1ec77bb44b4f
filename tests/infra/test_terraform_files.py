"""Offline checks of infra/*.tf (Terraform) as files: each parses, every reference names
something declared, variables and outputs are documented, the example tfvars sets only
declared variables, and every checkov skip says why."""

from __future__ import annotations

import re

import hcl2
import pytest
from terraform_config import INFRA, Terraform, clean, load_terraform


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def test_every_tf_file_parses_and_is_not_empty(tf: Terraform) -> None:
    assert len(tf.files) >= 8
    for name, text in tf.files.items():
        assert hcl2.loads(text), f"{name} parsed to nothing"


def test_every_reference_names_something_declared(tf: Terraform) -> None:
    """What `terraform validate` would catch first, without providers: references to
    undeclared variables, locals, resources or data sources (typos)."""
    text = "\n".join(
        line for body in tf.files.values() for line in body.splitlines() if "#" not in line[:4]
    )
    local_names = set(tf.locals)
    for name in re.findall(r"\bvar\.(\w+)", text):
        assert name in tf.variables, f"var.{name} is not declared"
    for name in re.findall(r"\blocal\.(\w+)", text):
        assert name in local_names, f"local.{name} is not declared"
    for kind, name in re.findall(r"\bdata\.(google_\w+)\.(\w+)", text):
        assert f"{kind}.{name}" in tf.data, f"data.{kind}.{name} is not declared"
    resource_text = re.sub(r"\bdata\.google_\w+\.\w+", "", text)
    for kind, name in re.findall(r"(?<![\w.\"])(google_\w+)\.(\w+)", resource_text):
        assert f"{kind}.{name}" in tf.resources, f"{kind}.{name} is not declared"


def test_variables_and_outputs_are_documented(tf: Terraform) -> None:
    for name, body in {**tf.variables, **tf.outputs}.items():
        assert len(body.get("description", "")) > 15, f"{name} needs a description"
    urls = tf.outputs["function_urls"]["value"]
    assert "google_cloudfunctions2_function.http" in urls
    assert "fn.url" in urls


def test_tfvars_example_sets_only_declared_variables(tf: Terraform) -> None:
    example = clean(hcl2.loads((INFRA / "terraform.tfvars.example").read_text()))
    assert "project_id" in example
    assert set(example) <= set(tf.variables), set(example) - set(tf.variables)
    required = {n for n, body in tf.variables.items() if "default" not in body}
    assert required <= set(example), f"the example misses required {required - set(example)}"
    # `functions` replaces the whole default map, so the example must size every function.
    assert set(example["functions"]) == set(tf.variables["functions"]["default"])
    assert example["public_functions"] == []


def test_every_checkov_skip_gives_a_reason(tf: Terraform) -> None:
    skips = 0
    for name, text in tf.files.items():
        for line in text.splitlines():
            if "checkov:skip" in line:
                skips += 1
                match = re.search(r"checkov:skip=(CKV2?_[A-Z0-9_]+):(.+)", line)
                assert match, f"{name}: skip without a check id and reason: {line.strip()}"
                assert len(match.group(2).strip()) >= 30, f"{name}: say why: {line.strip()}"
    assert skips >= 1
