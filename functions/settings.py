"""Serving settings: one typed object, read from the environment once per instance.

| variable | default | meaning |
|---|---|---|
| ESTATE_ARTIFACTS | ./artifacts | artifact store: local folder or gs://bucket/prefix |
| ESTATE_MODEL_NAME | ames | model to serve (models/<name>/ in the store) |
| ESTATE_MODEL_VERSION | (pointer) | pin a version instead of following serving.json |
| ESTATE_MAX_INSTANCES | 5000 | most instances in one request (more → 413) |
| ESTATE_MAX_REQUEST_BYTES | 8000000 | largest request body (larger → 413) |
| ESTATE_ORT_THREADS | 1 | onnxruntime intra-op threads per instance |
| ESTATE_RETRY_AFTER_SECONDS | 30 | Retry-After sent with 503 while no model loads |
| ESTATE_CORS_ORIGINS | localhost:8090 | browser origins allowed (JSON list; ["*"]: any) |
| ESTATE_PREDLOG_SAMPLE | 1.0 | share of predict requests logged as JSON lines (0 = off) |
| ESTATE_LOG_PROJECT | (none) | project named in logged trace ids (links logs to Cloud Trace) |
| ESTATE_RETRAIN_PROJECT | (none) | retrain: Google Cloud project of the Vertex AI job |
| ESTATE_RETRAIN_REGION | us-central1 | retrain: Vertex AI region |
| ESTATE_RETRAIN_PREFIX | incoming/ | retrain: only objects under this prefix start a job |
| ESTATE_RETRAIN_CONFIG | training_jobs/configs/ames.toml | retrain: config path in the image |
| ESTATE_RETRAIN_OUTPUT | (ESTATE_ARTIFACTS) | retrain: artifact store the job writes to |
| ESTATE_RETRAIN_STAGING | (none) | retrain: gs:// folder for job outputs |
| ESTATE_RETRAIN_IMAGE | (none) | retrain: training container (or ESTATE_RETRAIN_PACKAGE) |
| ESTATE_RETRAIN_PACKAGE | (none) | retrain: gs:// sdist run on the prebuilt image |
| ESTATE_RETRAIN_SERVICE_ACCOUNT | (none) | retrain: service account the job runs as |
| ESTATE_RETRAIN_MACHINE_TYPE | n1-standard-4 | retrain: machine type of the job |
| ESTATE_VERTEX_ENDPOINT | (regional host) | Vertex AI API host override (http:// = local stub) |
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESTATE_", frozen=True)

    artifacts: str = Field("./artifacts", description="Artifact store URI.")
    model_name: str = Field("ames", description="Model name to serve.")
    model_version: str | None = Field(None, description="Pinned version; default: the pointer's.")
    max_instances: int = Field(5000, ge=1)
    max_request_bytes: int = Field(8_000_000, ge=1024)
    ort_threads: int = Field(1, ge=1, le=64)
    retry_after_seconds: int = Field(30, ge=1)
    cors_origins: list[str] = Field(
        ["http://localhost:8090", "http://127.0.0.1:8090"],
        description="Origins whose browser pages may call the functions (CORS); '*' for any.",
    )
    predlog_sample: float = Field(1.0, ge=0.0, le=1.0, description="Share of requests logged.")
    log_project: str | None = Field(None, description="Project of logged trace ids.")
    retrain_project: str | None = None
    retrain_region: str = "us-central1"
    retrain_prefix: str = "incoming/"
    retrain_config: str = "training_jobs/configs/ames.toml"
    retrain_output: str | None = Field(None, description="Default: `artifacts`.")
    retrain_staging: str | None = None
    retrain_image: str | None = None
    retrain_package: str | None = None
    retrain_service_account: str | None = None
    retrain_machine_type: str = "n1-standard-4"
    vertex_endpoint: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this instance (cached: read the environment once)."""
    return Settings()
