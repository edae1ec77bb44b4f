"""Serving settings: one typed object, read from the environment once per instance.

| variable | default | meaning |
|---|---|---|
| ESTATE_ARTIFACTS | ./artifacts | artifact store: local folder or gs://bucket/prefix |
| ESTATE_MODEL_NAME | ames | model to serve (models/<name>/ in the store) |
| ESTATE_MODEL_VERSION | (pointer) | pin a version instead of following serving.json |
| ESTATE_MAX_INSTANCES | 5000 | most instances in one request (more → 413) |
| ESTATE_MAX_REQUEST_BYTES | 8000000 | largest request body (larger → 413) |
| ESTATE_ORT_THREADS | 1 | onnxruntime intra-op threads per instance |
| ESTATE_POINTER_REFRESH_SECONDS | 30 | re-read serving.json at most this often (0: every request) |
| ESTATE_RETRY_AFTER_SECONDS | 30 | Retry-After sent with 503 while no model loads |
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
    pointer_refresh_seconds: float = Field(
        30.0, ge=0.0, description="Re-read the serving pointer at most this often."
    )
    retry_after_seconds: int = Field(30, ge=1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this instance (cached: read the environment once)."""
    return Settings()
