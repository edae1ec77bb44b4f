"""Offline checks of infra/ (Terraform) against the code: a function per entry point in
main.py, gen2, each from its own source archive as its own identity, and given every
setting it needs and only settings it reads."""

from __future__ import annotations

import json
import re

import pytest
from terraform_config import (
    Terraform,
    code_entry_points,
    load_terraform,
    names_in,
    retrain_required,
    settings_env,
)


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def terraform_entry_points(tf: Terraform) -> dict[str, str]:
    """Entry point → Terraform resource address of the function that runs it."""
    found: dict[str, str] = {}
    for address, body in tf.of_type("google_cloudfunctions2_function").items():
        entry = body["build_config"][0]["entry_point"]
        if entry == "${each.key}":
            for name in names_in(body["for_each"] + tf.locals.get(_local(body["for_each"]), "")):
                found[name] = f'{address}["{name}"]'
        else:
            found[entry] = address
    return found


def _local(expression: str) -> str:
    match = re.fullmatch(r"\$\{local\.(\w+)\}", expression)
    return match.group(1) if match else ""


def test_each_entry_point_in_code_has_a_function_and_vice_versa(tf: Terraform) -> None:
    code = code_entry_points()
    deployed = set(terraform_entry_points(tf))
    assert "predict" in code
    assert code <= deployed, f"entry points in main.py without a function: {code - deployed}"
    assert deployed <= code, f"functions whose entry point is not in main.py: {deployed - code}"
    assert deployed == {"predict", "explain", "chat", "analyze", "retrain"}
    # Sizing is a variable per function, one entry per deployed function.
    sizing = tf.variables["functions"]["default"]
    assert set(sizing) == deployed


def test_functions_are_gen2_from_their_own_source_archive_as_their_own_identity(
    tf: Terraform,
) -> None:
    functions = tf.of_type("google_cloudfunctions2_function")
    assert functions
    for address, body in functions.items():
        build = body["build_config"][0]
        assert build["runtime"] == "python311"
        storage = build["source"][0]["storage_source"][0]
        key = "each.key" if build["entry_point"] == "${each.key}" else f'"{build["entry_point"]}"'
        # Each function its own archive: the same code, its own requirements.txt.
        assert storage["object"] == f"${{google_storage_bucket_object.source[{key}].name}}", address
        account = body["service_config"][0]["service_account_email"]
        expected = (
            "each.key" if build["entry_point"] == "${each.key}" else f'"{build["entry_point"]}"'
        )
        assert account == f"${{google_service_account.sa[{expected}].email}}", address
        # Cloud Build deploys later code; an apply must not roll it back.
        assert body["lifecycle"][0]["ignore_changes"] == ["${build_config[0].source}"], address
        sizing = json.dumps(body["service_config"][0])
        for knob in ("memory", "min_instances", "max_instances", "concurrency"):
            assert f".{knob}" in sizing, f"{address}: {knob} is not taken from var.functions"


def test_functions_set_every_required_setting(tf: Terraform) -> None:
    env = settings_env()
    required = {name for name, needed in env.items() if needed}
    assert {"ESTATE_ARTIFACTS", "ESTATE_MODEL_NAME"} <= required
    serving = tf.locals["serving_env"]
    assert required <= set(serving), f"not set for the functions: {required - set(serving)}"
    assert serving["ESTATE_ARTIFACTS"] == "${local.artifacts_uri}"
    assert "google_storage_bucket.artifacts.name" in tf.locals["artifacts_uri"]
    for address, body in tf.of_type("google_cloudfunctions2_function").items():
        variables = body["service_config"][0]["environment_variables"]
        assert variables.startswith("${merge(local.serving_env,"), address


def test_retrain_gets_every_setting_it_cannot_run_without(tf: Terraform) -> None:
    variables = tf.resource("google_cloudfunctions2_function.retrain")["service_config"][0]
    assert "local.retrain_env" in variables["environment_variables"]
    env = tf.locals["retrain_env"]
    for alternatives in retrain_required():
        assert alternatives & set(env), f"retrain needs one of {alternatives}"
    # It runs the training job as the trainer, in the training image Cloud Build pushes.
    assert '"trainer"' in env["ESTATE_RETRAIN_SERVICE_ACCOUNT"]
    assert env["ESTATE_RETRAIN_IMAGE"] == "${local.training_image}"


def test_every_estate_variable_terraform_sets_is_a_setting(tf: Terraform) -> None:
    known = set(settings_env())
    text = "\n".join(tf.files.values())
    used = set(re.findall(r"\b(ESTATE_[A-Z_]+)\b", text))
    assert used, "Terraform sets no ESTATE_ variable"
    assert used <= known, f"unknown settings (typo?): {used - known}"


def test_each_function_is_given_variables_its_own_settings_read(tf: Terraform) -> None:
    """Settings are per function (estate/serving/settings.py): the LLM variables go to
    chat, the retrain ones to retrain, the shared ones are read by predict and explain."""
    from estate.serving.function_settings import ChatSettings, RetrainSettings
    from estate.serving.settings import ServingSettings

    def read_by(cls: type[ServingSettings | ChatSettings | RetrainSettings]) -> set[str]:
        return {f"ESTATE_{name}".upper() for name in cls.model_fields}

    def named(local: str) -> set[str]:
        return set(re.findall(r"\b(ESTATE_[A-Z_]+)\b", json.dumps(tf.locals[local])))

    for local, cls in [
        ("serving_env", ServingSettings),
        ("llm_env", ChatSettings),
        ("retrain_env", RetrainSettings),
    ]:
        assert named(local), f"local.{local} sets no ESTATE_ variable"
        assert named(local) <= read_by(cls), (
            f"{cls.__name__} never reads {named(local) - read_by(cls)}"
        )


def test_analyze_is_an_http_function_that_only_reads_bundles(tf: Terraform) -> None:
    """Its own identity, reading the artifacts bucket only; no LLM key, no secret; watched
    by the request metrics like the other HTTP functions; a deployer and invoker grant."""
    from estate.serving.function_settings import AnalyzeSettings

    assert "analyze" in names_in(tf.locals["http_function_names"])
    assert "analyze" in tf.locals["service_accounts"]
    grants = [g for g in tf.locals["bucket_grants"].values() if '"analyze"' in g["member"]]
    assert grants == [
        {
            "bucket": "${google_storage_bucket.artifacts.name}",
            "role": "roles/storage.objectViewer",
            "member": '${local.sa["analyze"]}',
        }
    ]
    assert not [g for g in tf.locals["project_grants"].values() if '"analyze"' in g["member"]]
    http = json.dumps(tf.resource("google_cloudfunctions2_function.http"))
    assert 'each.key == \\"chat\\" ? local.llm_env' in http  # the LLM env is chat's only
    assert (
        "analyze" in tf.resource("google_service_account_iam_member.deployer_acts_as")["for_each"]
    )
    assert "analyze" in tf.locals["function_requests"]
    # What Terraform sets for every function, analyze reads (or shares with predict).
    read = {f"ESTATE_{name}".upper() for name in AnalyzeSettings.model_fields}
    assert {"ESTATE_ARTIFACTS", "ESTATE_MODEL_NAME"} <= read
    assert tf.variables["functions"]["default"]["analyze"] == {}
    assert tf.variables["gateway_quotas"]["default"]["analyze"] >= 1
