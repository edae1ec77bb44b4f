"""Where data lives: a local path, ``file://`` or ``gs://bucket/object``, read one way.

Training reads its data set, batch scoring splits its gs:// input and output, and the
monitor reads prediction logs through these, so a URI means the same thing everywhere.
"""

from __future__ import annotations

from pathlib import Path

from estate.contract.errors import ConfigError, NotFoundError
from estate.storage.store import GCSStore


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/path/to/object`` → (bucket, object name)."""
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise ConfigError(f"{uri!r} names no object: use gs://BUCKET/PATH.")
    return bucket, name


def local_path(uri: str) -> Path:
    """A local URI (a path, or ``file://`` + path) as a path."""
    return Path(uri.removeprefix("file://"))


def read_bytes(uri: str) -> bytes:
    """The raw bytes at a local path or ``gs://bucket/object``."""
    if uri.startswith("gs://"):
        bucket, name = split_gs(uri)
        return GCSStore(f"gs://{bucket}").read_bytes(name)
    path = local_path(uri)
    if not path.is_file():
        raise NotFoundError(f"Data file {path} not found; pass --data PATH or gs://BUCKET/PATH.")
    return path.read_bytes()
