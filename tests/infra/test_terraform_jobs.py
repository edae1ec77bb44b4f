"""Offline checks of infra/ (Terraform), scheduled jobs: the scheduler posts the job files
to Vertex AI, the training image's repository, and the printed `estate submit` commands
that write those job files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from terraform_config import Terraform, load_terraform


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


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
