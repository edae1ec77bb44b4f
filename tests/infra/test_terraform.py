"""Offline checks of infra/ (Terraform): parses, wiring to the code, least privilege."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from terraform_config import (
    INFRA,
    Terraform,
    clean,
    code_entry_points,
    load_terraform,
    names_in,
    retrain_required,
    settings_env,
)

HTTP_FUNCTIONS = ("predict", "explain", "chat", "analyze")


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


def test_every_tf_file_parses_and_is_not_empty(tf: Terraform) -> None:
    assert len(tf.files) >= 8
    for name, text in tf.files.items():
        assert hcl2.loads(text), f"{name} parsed to nothing"


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
    from estate.serving.settings import ChatSettings, RetrainSettings, ServingSettings

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


def test_scheduler_posts_the_submit_json_to_vertex_with_an_oauth_token(tf: Terraform) -> None:
    job = tf.resource("google_cloud_scheduler_job.vertex")
    target = job["http_target"][0]
    assert target["http_method"] == "POST"
    assert "aiplatform.googleapis.com/v1/projects/" in tf.locals["custom_jobs_url"]
    assert tf.locals["custom_jobs_url"].endswith("/customJobs")
    assert target["body"] == '${base64encode(file("${path.module}/${each.value.file}"))}'
    token = target["oauth_token"][0]
    assert token["service_account_email"] == '${google_service_account.sa["scheduler"].email}'
    assert token["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    schedules = tf.locals["scheduled_jobs"]
    assert "var.retrain_job_file" in schedules
    assert "var.monitor_job_file" in schedules


TRAINER = "estate-trainer@estate-prod.iam.gserviceaccount.com"
SAMPLE = {
    "var.project_id": "estate-prod",
    "var.region": "europe-west4",
    "var.name_prefix": "estate",
    "var.model_name": "ames",
    "var.retrain_config": "configs/ames.toml",
    "google_storage_bucket.data.name": "estate-prod-estate-data",
    "google_storage_bucket.logs.name": "estate-prod-estate-logs",
    "local.artifacts_uri": "gs://estate-prod-estate-artifacts/estate",
    'google_service_account.sa["trainer"].email': TRAINER,
    "google_artifact_registry_repository.training.repository_id": "estate-training",
}


def interpolate(text: str, values: dict[str, str]) -> str:
    for expression, value in values.items():
        text = text.replace("${" + expression + "}", value)
    return text


def test_the_training_image_lives_in_its_own_repository_the_pipeline_pushes_to(
    tf: Terraform,
) -> None:
    from estate.serving import jobs as vertex

    repo = tf.resource("google_artifact_registry_repository.training")
    assert repo["format"] == "DOCKER"
    assert repo["repository_id"] == "${var.name_prefix}-training"
    push = tf.resource(
        "google_artifact_registry_repository_iam_member.deployer_pushes_training_image"
    )
    assert push["repository"] == "${google_artifact_registry_repository.training.name}"
    assert push["role"] == "roles/artifactregistry.writer"
    assert push["member"] == '${local.sa["deployer"]}'
    # Unless var.training_image says otherwise, the image is the one `estate submit`
    # defaults to (and cloudbuild.yaml pushes).
    expression = tf.locals["training_image"]
    assert expression.startswith("${var.training_image != null ? var.training_image : ")
    default = re.search(r': "(.*)"}$', expression)
    assert default
    assert interpolate(default.group(1), SAMPLE) == vertex.training_image(
        "estate-prod", "europe-west4", "estate"
    )
    assert tf.variables["training_image"]["default"] is None


@pytest.mark.parametrize("job", ["retrain", "monitor"])
def test_the_printed_submit_commands_write_the_scheduled_jobs(
    tf: Terraform, job: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`terraform output scheduled_job_commands` → run as printed → the job files that
    retrain_job_file / monitor_job_file point at, in the training image."""
    import shlex

    from estate.cli.main import main

    image = "europe-west4-docker.pkg.dev/estate-prod/estate-training/trainer:latest"
    command = tf.outputs["scheduled_job_commands"]["value"][job]
    command = interpolate(command, {**SAMPLE, "local.training_image": image})
    assert command.startswith('${join(" ", ')
    assert command.endswith(")}")
    argv = shlex.split(" ".join(json.loads(command[len('${join(" ", ') : -2])))
    assert argv[0] == "estate"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "infra" / "jobs").mkdir(parents=True)
    assert main(argv[1:]) == 0
    body = json.loads((tmp_path / "infra" / "jobs" / f"{job}.json").read_text())
    container = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    assert container["imageUri"] == image
    assert container["args"][0] == ("train" if job == "retrain" else "monitor")
    assert body["jobSpec"]["serviceAccount"].startswith("estate-trainer@")
    assert body["labels"]["trigger"] == "schedule"


def test_the_prediction_sink_selects_the_lines_predict_writes(tf: Terraform) -> None:
    """The sink's filter names fields of `PredictionLogLine` and of `PredictionBatchLine`,
    with the values they are written with."""
    from estate.contract.predlog import EVENT, LoggedModel, PredictionBatchLine, PredictionLogLine

    sink = tf.resource("google_logging_project_sink.predictions")
    assert "${var.prediction_log_filter}" in sink["filter"]
    clauses = re.findall(
        r'jsonPayload\.(\w+)=\\?"([^"\\]*)\\?"', tf.variables["prediction_log_filter"]["default"]
    )
    assert clauses, "prediction_log_filter tests no jsonPayload field"
    model = LoggedModel(name="ames", version="v1")
    line = PredictionLogLine(event=EVENT, model=model, features={}, output={})
    batch = PredictionBatchLine(
        event=EVENT, kind="batch", model=model, instances=[{}], outputs={}, count=1
    )
    for written in (json.loads(line.to_json()), json.loads(batch.to_json())):
        for field, value in clauses:
            assert str(written.get(field)) == value, (field, value)


def test_alerts_watch_error_rate_and_p95_latency_from_log_metrics(tf: Terraform) -> None:
    error = tf.resource("google_monitoring_alert_policy.error_rate")["conditions"][0]
    threshold = error["condition_threshold"][0]
    assert "google_logging_metric.server_errors.name" in threshold["filter"]
    assert "google_logging_metric.requests.name" in threshold["denominator_filter"]
    errors = tf.resource("google_logging_metric.server_errors")
    assert errors["filter"].endswith("AND httpRequest.status>=500")
    latency = tf.resource("google_monitoring_alert_policy.latency_p95")["conditions"][0]
    aggregation = latency["condition_threshold"][0]["aggregations"][0]
    assert aggregation["per_series_aligner"] == "ALIGN_PERCENTILE_95"
    metric = tf.resource("google_logging_metric.latency")
    assert metric["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    assert "httpRequest.latency" in metric["value_extractor"]


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
        assert card["x-google-backend"]["address"] == "${" + function + "_url}/model_card.md"
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


def test_analyze_is_an_http_function_that_only_reads_bundles(tf: Terraform) -> None:
    """Its own identity, reading the artifacts bucket only; no LLM key, no secret; watched
    by the request metrics like the other HTTP functions; a deployer and invoker grant."""
    from estate.serving.settings import AnalyzeSettings

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
