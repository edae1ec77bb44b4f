"""Artifact store: one small interface, a local-folder backend and a Cloud Storage backend.

Keys are ``/``-separated paths below the store's root. Writes are create-only unless
``overwrite=True``, which is how bundle versions stay immutable; every write is atomic
(a reader sees the old bytes or the new bytes, never a torn file).

The one mutable object, the serving pointer, is updated by compare-and-swap:
`read_versioned` returns the bytes and a generation token, and `write_if` writes only if
the object still has that generation (`ConflictError` otherwise). Cloud Storage enforces
it with ``ifGenerationMatch``; the local store with an ``fcntl`` lock around the
check and an atomic rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from estate.contract.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)


class ArtifactStore(Protocol):
    """What training writes to and serving reads from."""

    uri: str

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; `NotFoundError` if absent."""
        ...

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Store `data` atomically; `AlreadyExistsError` if the key exists and not overwrite."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys below `prefix`, sorted."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        """The bytes (None if absent) and a generation token for `write_if`."""
        ...

    def write_if(self, key: str, data: bytes, generation: str) -> str:
        """Write only if `key` still has `generation` (`ABSENT`: must not exist).

        Returns the new generation; `ConflictError` when another writer got there first.
        """
        ...


#: Generation token of an object that does not exist (GCS uses generation 0 the same way).
ABSENT = "0"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    ):
        raise StoreError(
            f"Invalid store key {key!r}: use a relative path like 'models/x/y' "
            "(no empty, '..' or hidden parts)."
        )
    return key


class LocalStore:
    """A folder on disk (default ``./artifacts``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{path} does not exist.") from None
        except OSError as exc:
            raise StoreUnavailableError(f"Cannot read {path}: {exc}") from exc

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp_name, path)  # atomic rename over the old file
            else:
                try:
                    os.link(tmp_name, path)  # atomic create-only: fails if path exists
                except FileExistsError:
                    raise AlreadyExistsError(
                        f"{path} already exists and store objects are immutable; "
                        "write a new version instead."
                    ) from None
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        if prefix.strip("/"):
            _check_key(prefix.strip("/"))
        base = self.root / prefix.strip("/") if prefix else self.root
        if not base.exists():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
        return sorted(keys)

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """An exclusive lock for read-modify-write of `path` (a hidden sibling lock file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _generation(data: bytes | None) -> str:
        # Content hash as the generation: the pointer holds a timestamp, so two writes
        # never produce the same bytes and an A→B→A change is still detected.
        return ABSENT if data is None else "sha256:" + hashlib.sha256(data).hexdigest()

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        try:
            data: bytes | None = self.read_bytes(key)
        except NotFoundError:
            data = None
        return data, self._generation(data)

    def write_if(self, key: str, data: bytes, generation: str) -> str:
        path = self._path(key)
        with self._locked(path):
            current, found = self.read_versioned(key)
            if found != generation:
                raise ConflictError(
                    f"{path} changed since it was read (generation {found}, expected "
                    f"{generation}): another writer updated it. Re-read it and try again."
                )
            self.write_bytes(key, data, overwrite=current is not None)
        return self._generation(data)


class GCSStore:
    """A Cloud Storage bucket and prefix, e.g. ``gs://my-bucket/estate``.

    google-cloud-storage is imported here, lazily, so serving from a local folder never
    pays for it. It honours ``STORAGE_EMULATOR_HOST`` (used by the tests).

    Reads give up after `read_deadline` seconds of retries (the client's default is 120 s):
    a cold instance whose store is down answers 503 + Retry-After quickly instead of
    holding the request for two minutes. Writes (training, promotion) retry for up to
    `write_deadline` seconds, and a create-only write is idempotent across its retries.
    """

    def __init__(
        self,
        uri: str,
        client: Any = None,
        read_deadline: float = 5.0,
        write_deadline: float = 120.0,
    ) -> None:
        if not uri.startswith("gs://"):
            raise StoreError(f"{uri!r} is not a gs:// URI.")
        bucket, _, prefix = uri[len("gs://") :].partition("/")
        if not bucket:
            raise StoreError(f"{uri!r} names no bucket: use gs://BUCKET[/PREFIX].")
        self.uri = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        if client is None:
            from google.cloud import storage

            client = storage.Client()
        self._bucket = client.bucket(bucket)
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._read_retry = DEFAULT_RETRY.with_timeout(read_deadline)
        self._read_timeout = (min(read_deadline, 3.0), 60.0)  # (connect, read) seconds
        self._write_deadline = write_deadline

    def _name(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_bytes(self, key: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            data: bytes = self._bucket.blob(self._name(key)).download_as_bytes(
                retry=self._read_retry, timeout=self._read_timeout
            )
        except gexc.NotFound:
            raise NotFoundError(f"{self.uri}/{key} does not exist.") from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StoreUnavailableError(f"Cannot read {self.uri}/{key}: {exc}") from exc
        return data

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Upload `data`; create-only unless `overwrite` (generation 0, enforced by GCS).

        A create-only upload is retried by hand, not by the client: when a try's request
        was committed but its response lost, the next try finds the object and GCS says
        412. Only then (never on the first try) the object is read back, and if it holds
        exactly `data` the write is ours and succeeded; otherwise it is a real conflict.
        """
        from google.api_core import exceptions as gexc
        from google.cloud.storage.retry import DEFAULT_RETRY

        blob = self._bucket.blob(self._name(key))
        attempts = 0

        def upload() -> None:
            nonlocal attempts
            attempts += 1
            try:
                blob.upload_from_string(
                    data, if_generation_match=None if overwrite else 0, retry=None
                )
            except gexc.PreconditionFailed:
                if attempts > 1 and self._holds(key, data):
                    return  # our own earlier try landed: the write is done
                raise

        try:
            DEFAULT_RETRY.with_timeout(self._write_deadline)(upload)()
        except gexc.PreconditionFailed:
            raise AlreadyExistsError(
                f"{self.uri}/{key} already exists and store objects are immutable; "
                "write a new version instead."
            ) from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StoreUnavailableError(f"Cannot write {self.uri}/{key}: {exc}") from exc

    def _holds(self, key: str, data: bytes) -> bool:
        """Whether the live object at `key` has exactly the bytes `data` (size and md5 from
        its metadata; the bytes themselves when it has no md5)."""
        import base64

        blob = self._bucket.get_blob(
            self._name(key), retry=self._read_retry, timeout=self._read_timeout
        )
        if blob is None or blob.size != len(data):
            return False
        if blob.md5_hash:  # absent for composite objects
            digest = hashlib.md5(data, usedforsecurity=False).digest()
            return bool(blob.md5_hash == base64.b64encode(digest).decode())
        landed: bytes = blob.download_as_bytes(retry=self._read_retry, timeout=self._read_timeout)
        return landed == data

    def exists(self, key: str) -> bool:
        blob = self._bucket.blob(self._name(key))
        return bool(blob.exists(retry=self._read_retry, timeout=self._read_timeout))

    def list(self, prefix: str) -> list[str]:
        if prefix.strip("/"):
            _check_key(prefix.strip("/"))
        folder = "/".join(part for part in (self.prefix, prefix.strip("/")) if part)
        skip = len(self.prefix) + 1 if self.prefix else 0
        blobs = self._bucket.list_blobs(prefix=folder + "/" if folder else None)
        return sorted(b.name[skip:] for b in blobs)

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        from google.api_core import exceptions as gexc

        name = self._name(key)
        for _ in range(5):
            try:
                blob = self._bucket.get_blob(
                    name, retry=self._read_retry, timeout=self._read_timeout
                )
                if blob is None:
                    return None, ABSENT
                # Download exactly the generation whose number we return.
                data: bytes = blob.download_as_bytes(
                    if_generation_match=blob.generation,
                    retry=self._read_retry,
                    timeout=self._read_timeout,
                )
                return data, str(blob.generation)
            except (gexc.NotFound, gexc.PreconditionFailed):
                continue  # replaced or deleted between the two calls: read again
            except (gexc.GoogleAPIError, OSError) as exc:
                raise StoreUnavailableError(f"Cannot read {self.uri}/{key}: {exc}") from exc
        raise ConflictError(f"{self.uri}/{key} keeps changing while being read; try again.")

    def write_if(self, key: str, data: bytes, generation: str) -> str:
        from google.api_core import exceptions as gexc

        blob = self._bucket.blob(self._name(key))
        try:
            blob.upload_from_string(data, if_generation_match=int(generation))
        except gexc.PreconditionFailed:
            raise ConflictError(
                f"{self.uri}/{key} changed since it was read (expected generation "
                f"{generation}): another writer updated it. Re-read it and try again."
            ) from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StoreUnavailableError(f"Cannot write {self.uri}/{key}: {exc}") from exc
        return str(blob.generation)


def open_store(uri: str | Path) -> ArtifactStore:
    """The store for `uri`: ``gs://bucket/prefix`` or a local folder (``file://`` allowed)."""
    text = str(uri)
    if text.startswith("gs://"):
        return GCSStore(text)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        raise StoreError(f"Unsupported store URI {text!r}: use a local folder or gs://bucket.")
    return LocalStore(text)
