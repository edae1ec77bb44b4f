"""The ``retrain`` CloudEvent function: a new data file in the bucket starts a training job.

Deployed with an Eventarc trigger on ``google.cloud.storage.object.v1.finalized``. Only
data files (CSV, gzipped CSV, Parquet) under ``ESTATE_RETRAIN_PREFIX`` start a Vertex AI
custom job running ``estate train --data gs://<bucket>/<object>`` in the training image
(``ESTATE_RETRAIN_IMAGE``: the image Cloud Build pushed with this code); every other event is
ignored with a logged reason. The job builder and the Vertex AI client are imported
inside the handler, so the HTTP functions in the same source never load them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from estate.serving.function_settings import RetrainSettings

FINALIZED = "google.cloud.storage.object.v1.finalized"
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def log(severity: str, message: str, **fields: Any) -> None:
    """One structured line on stdout: Cloud Logging reads severity and message from it."""
    print(json.dumps({"severity": severity, "message": message, **fields}, default=str), flush=True)


def skip_reason(event_type: str, name: str, settings: RetrainSettings) -> str | None:
    """Why this event must not start a job, or None when it should."""
    if event_type != FINALIZED:
        return f"event type {event_type!r} is not {FINALIZED!r}"
    if not name.startswith(settings.retrain_prefix):
        return f"object {name!r} is outside the watched prefix {settings.retrain_prefix!r}"
    if name.endswith("/"):
        return f"object {name!r} is a folder placeholder"
    if not name.lower().endswith(DATA_SUFFIXES):
        return f"object {name!r} is not a data file ({', '.join(DATA_SUFFIXES)})"
    return None


def missing_settings(settings: RetrainSettings) -> list[str]:
    """Settings a retrain cannot run without, as environment variable names."""
    missing = []
    if not settings.retrain_project:
        missing.append("ESTATE_RETRAIN_PROJECT")
    if not settings.retrain_staging:
        missing.append("ESTATE_RETRAIN_STAGING")
    if not settings.retrain_image:
        missing.append("ESTATE_RETRAIN_IMAGE")
    return missing


def submit_for(
    bucket: str, name: str, generation: str, settings: RetrainSettings
) -> dict[str, Any]:
    """Build and submit the training job for one data object; returns the created job."""
    from estate.serving import jobs as vertex

    run_id = f"retrain-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    request = vertex.JobRequest(
        project=str(settings.retrain_project),
        region=settings.retrain_region,
        command=vertex.train_command(
            settings.retrain_config,
            f"gs://{bucket}/{name}",
            settings.retrain_output or settings.artifacts,
        ),
        staging=str(settings.retrain_staging),
        image=str(settings.retrain_image),
        machine_type=settings.retrain_machine_type,
        service_account=settings.retrain_service_account,
        labels={"trigger": "gcs", "generation": generation[:63]},
        run_id=run_id,
    )
    body = vertex.build_custom_job(request)
    return vertex.submit_custom_job(
        body,
        str(settings.retrain_project),
        settings.retrain_region,
        api_endpoint=settings.vertex_endpoint,
    )


def entry_point(settings: RetrainSettings | None = None) -> Callable[[CloudEvent], None]:
    """The ``retrain`` function, its settings read once (main.py resolves it on first use).

    Registered as a CloudEvent function here, when main.py resolves the target:
    functions-framework reads its signature registry only after that.
    """
    settings = settings or RetrainSettings()

    @functions_framework.cloud_event
    def retrain(event: CloudEvent) -> None:
        """CloudEvent entry point (functions-framework target ``retrain``)."""
        handle_event(event, settings)

    return retrain


def handle_event(event: CloudEvent, settings: RetrainSettings) -> None:
    """Start a training job for a new data file, or log why not.

    Configuration problems are logged as errors and not raised: a retry cannot fix them.
    A failed submission raises, so Eventarc retries it when retries are enabled.
    """
    data = event.get_data()
    data = data if isinstance(data, dict) else {}
    bucket, name = str(data.get("bucket", "")), str(data.get("name", ""))
    where = {"event_id": event["id"], "bucket": bucket, "object": name}
    reason = skip_reason(event["type"], name, settings)
    if reason is not None:
        log("INFO", f"retrain: ignored: {reason}", **where)
        return
    missing = missing_settings(settings)
    if missing:
        log("ERROR", f"retrain: not configured; set {', '.join(missing)}", **where)
        return
    try:
        job = submit_for(bucket, name, str(data.get("generation", "")), settings)
    except Exception as exc:
        log("ERROR", f"retrain: submitting the training job failed: {exc}", **where)
        raise
    log("NOTICE", f"retrain: submitted {job.get('name')}", job=job.get("name"), **where)
