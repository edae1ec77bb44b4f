"""Vertex AI custom jobs (training, batch scoring, drift checks): build the request, submit it.

Every job runs the training image (the repository's Dockerfile, entry point ``estate``).

The job body is built as the REST JSON of ``projects.locations.customJobs.create`` with the
standard library only, so the same dict is (a) written to a file for Cloud Scheduler's
direct HTTP call, (b) sent by the real ``google-cloud-aiplatform`` client, and (c) built
inside the ``retrain`` Cloud Function without importing any training library.
``google.cloud.aiplatform_v1`` is imported lazily, only when a job is actually submitted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from estate.contract.errors import ConfigError

DEFAULT_MACHINE_TYPE = "n1-standard-4"
#: The training image (the repository's Dockerfile): its entry point is the ``estate``
#: CLI, so a job's container args are an ``estate`` subcommand line.
IMAGE_ENTRYPOINT = ["estate"]
#: Name of the image in the Artifact Registry repository ``<prefix>-training`` that
#: Terraform creates (infra/functions.tf) and Cloud Build pushes to (cloudbuild.yaml).
IMAGE_NAME = "trainer"
DEFAULT_NAME_PREFIX = "estate"

_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class JobRequest:
    """Everything a training (or scoring, or monitoring) custom job needs, cloud-side.

    ``command`` is the ``estate`` subcommand and its arguments, run by the training
    image's entry point; ``staging`` is the ``gs://`` folder under which Vertex AI writes
    the job's own outputs (``<staging>/jobs/<run_id>/``, exported to the container as
    ``AIP_MODEL_DIR`` etc.).
    """

    project: str
    region: str
    command: list[str]
    staging: str
    image: str
    machine_type: str = DEFAULT_MACHINE_TYPE
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    display_name: str | None = None


def training_image(
    project: str, region: str, prefix: str = DEFAULT_NAME_PREFIX, tag: str = "latest"
) -> str:
    """The image Cloud Build pushes for this project: ``:latest`` and ``:<build id>``."""
    return f"{region}-docker.pkg.dev/{project}/{prefix}-training/{IMAGE_NAME}:{tag}"


def new_run_id(prefix: str = "estate", now: datetime | None = None) -> str:
    """A readable, sortable run id that is also a valid label value."""
    now = now or datetime.now(UTC)
    return f"{prefix}-{now.strftime('%Y%m%d-%H%M%S')}".lower()


def train_command(config: str, data: str, store: str) -> list[str]:
    """The container arguments of a training run (``estate train …``)."""
    return ["train", "--config", config, "--data", data, "--store", store]


def score_command(
    input_uri: str, output_uri: str, store: str, model: str, id_column: str | None
) -> list[str]:
    """The container arguments of one batch-scoring shard (``estate score …``)."""
    command = ["score", "--input", input_uri, "--output", output_uri]
    command += ["--store", store, "--model", model]
    return command + (["--id-column", id_column] if id_column else [])


def monitor_command(logs: str, store: str, model: str) -> list[str]:
    """The container arguments of a drift check (``estate monitor …``; exit 1 on drift)."""
    return ["monitor", "--logs", logs, "--store", store, "--model", model]


def shard_output(input_uri: str, output_dir: str) -> str:
    """``gs://in/part-7.csv.gz`` → ``<output_dir>/part-7.scores.csv``: one output per file."""
    name = input_uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    ext = ".parquet" if input_uri.lower().endswith((".parquet", ".pq")) else ".csv"
    return f"{output_dir.rstrip('/')}/{name}.scores{ext}"


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Refuse labels Vertex AI would reject, naming the bad one (400 from the API otherwise)."""
    for key, value in labels.items():
        if not _LABEL.match(key):
            raise ConfigError(
                f"Label key {key!r} is invalid: use lowercase letters, digits, '_' or '-', "
                "starting with a letter, at most 63 characters."
            )
        if not _LABEL_VALUE.match(value):
            raise ConfigError(
                f"Label {key}={value!r} is invalid: values use lowercase letters, digits, "
                "'_' or '-', at most 63 characters."
            )
    return labels


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["team=ml", "cost=train"]`` → a label dict (the ``--label`` flag)."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--label {item!r} must look like KEY=VALUE.")
        labels[key.strip()] = value.strip()
    return check_labels(labels)


def build_custom_job(request: JobRequest) -> dict[str, Any]:
    """The ``CustomJob`` resource as REST JSON (camelCase), ready for ``customJobs.create``."""
    if not request.image:
        raise ConfigError(
            "A custom job needs the training image (--image; default: the image Cloud "
            f"Build pushes, {training_image('PROJECT', 'REGION')})."
        )
    if not request.staging.startswith("gs://"):
        raise ConfigError(
            f"--staging {request.staging!r} must be a gs:// folder: Vertex AI writes the "
            "job's outputs there."
        )
    run_id = request.run_id or new_run_id()
    labels = check_labels({"app": "estate-advisor", "run": run_id, **request.labels})
    pool: dict[str, Any] = {
        "machineSpec": {"machineType": request.machine_type},
        "replicaCount": "1",
        "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
        "containerSpec": {
            "imageUri": request.image,
            "command": list(IMAGE_ENTRYPOINT),
            "args": list(request.command),
        },
    }
    spec: dict[str, Any] = {
        "workerPoolSpecs": [pool],
        "baseOutputDirectory": {"outputUriPrefix": f"{request.staging.rstrip('/')}/jobs/{run_id}/"},
    }
    if request.service_account:
        spec["serviceAccount"] = request.service_account
    return {
        "displayName": request.display_name or run_id,
        "jobSpec": spec,
        "labels": labels,
    }


def api_host(region: str) -> str:
    """Vertex AI's regional endpoint: jobs must be created in their region's host."""
    return f"{region}-aiplatform.googleapis.com"


def parent(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def create_url(project: str, region: str) -> str:
    """The URL Cloud Scheduler POSTs the job body to (with an OAuth token of its SA)."""
    return f"https://{api_host(region)}/v1/{parent(project, region)}/customJobs"


def submit_custom_job(
    body: dict[str, Any],
    project: str,
    region: str,
    *,
    api_endpoint: str | None = None,
    credentials: Any = None,
) -> dict[str, Any]:
    """Create the job with the real client (REST transport); returns the created resource.

    ``api_endpoint`` overrides the regional host, e.g. ``http://127.0.0.1:PORT`` for a
    local stub (the REST transport honours an explicit ``http://`` scheme); a plain-HTTP
    endpoint gets anonymous credentials, like the storage emulators, since no token can
    be checked there. Otherwise the client uses Application Default Credentials.
    """
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform_v1

    if credentials is None and api_endpoint and api_endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]

    client = aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=credentials,
        client_options={"api_endpoint": api_endpoint or api_host(region)},
    )
    job = aiplatform_v1.CustomJob.from_json(json.dumps(body))
    try:
        created = client.create_custom_job(parent=parent(project, region), custom_job=job)
    except api_exceptions.GoogleAPICallError as exc:
        raise ConfigError(
            f"Vertex AI refused the custom job ({exc.code}): {exc.message}. Check the "
            "project, region, image and the service account's permissions."
        ) from exc
    result: dict[str, Any] = json.loads(
        aiplatform_v1.CustomJob.to_json(created, use_integers_for_enums=False)
    )
    return result
