"""Where the bytes come from and go to: a streaming reader for a local path or gs://
object, and a sink whose output appears only when it is complete (a renamed temporary
file, or one resumable upload finalised on success and cancelled on error)."""

from __future__ import annotations

import importlib
import io
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any, cast

from estate.contract import cells
from estate.contract.errors import ConfigError, NotFoundError, StoreUnavailableError
from estate.storage.uris import local_path, split_gs

#: Bytes per resumable-upload request to Cloud Storage (a multiple of 256 KiB).
GCS_CHUNK_BYTES = 8 << 20


def same_file(input_uri: str, output_uri: str) -> bool:
    """Whether two URIs name one file: local paths resolved (links, ``..``, ``file://``),
    gs:// objects by bucket and exact object name."""
    if input_uri.startswith("gs://") or output_uri.startswith("gs://"):
        if not (input_uri.startswith("gs://") and output_uri.startswith("gs://")):
            return False
        (b1, n1), (b2, n2) = split_gs(input_uri), split_gs(output_uri)
        return b1.lower() == b2.lower() and n1 == n2
    a, b = local_path(input_uri), local_path(output_uri)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)  # also catches hard links
    return a.resolve() == b.resolve()


def _gcs_blob(uri: str) -> Any:
    storage: Any = importlib.import_module("google.cloud.storage")  # lazy: gs:// only
    bucket, name = split_gs(uri)
    return storage.Client().bucket(bucket).blob(name)


def open_binary(uri: str, mode: str, stack: ExitStack) -> tuple[IO[bytes], int | None]:
    """A streaming reader for a local path or gs:// object, and its size if known."""
    if mode != "rb":
        raise ValueError("open_binary reads; write with open_output().")
    if uri.startswith("gs://"):
        from google.api_core import exceptions as gexc

        blob = _gcs_blob(uri)
        try:
            if not blob.exists():
                raise NotFoundError(f"{uri} does not exist.")
            blob.reload()
            return stack.enter_context(blob.open("rb", chunk_size=8 << 20)), blob.size
        except gexc.GoogleAPIError as exc:
            raise StoreUnavailableError(f"Cannot read {uri}: {cells.one_line(exc)}") from exc
    path = local_path(uri)
    if not path.is_file():
        raise NotFoundError(f"Input file {path} not found.")
    return stack.enter_context(path.open("rb")), path.stat().st_size


@contextmanager
def open_output(uri: str) -> Iterator[IO[bytes]]:
    """A sink whose bytes appear at `uri` only if the block exits without an error.

    Local: a hidden temporary file in the same folder, fsynced and renamed over `uri`
    (atomic on POSIX). gs://: one resumable upload, finalised by ``close()`` on success
    and cancelled on error; Cloud Storage creates no object until it is finalised.
    """
    if uri.startswith("gs://"):
        from google.cloud.storage.retry import DEFAULT_RETRY

        # Chunks of a resumable upload are safe to retry (each names its offset), so a
        # network blip mid-file does not end a long run; the object still only appears
        # when close() sends the last chunk.
        writer = _gcs_blob(uri).open(
            "wb", ignore_flush=True, chunk_size=GCS_CHUNK_BYTES, retry=DEFAULT_RETRY
        )
        try:
            yield cast(IO[bytes], _UploadSink(writer, uri))
        except BaseException:
            _cancel_upload(writer)
            raise
        try:
            writer.close()  # the last request finalises the object, complete
        except Exception as exc:
            _cancel_upload(writer)
            _delete_if_corrupt(uri, exc)
            raise StoreUnavailableError(f"Cannot write {uri}: {cells.one_line(exc)}") from exc
        return
    path = local_path(uri)
    if path.is_dir():
        raise ConfigError(f"--output {path} is a folder: give a file name ending .csv or .parquet.")
    if not path.parent.is_dir():
        raise ConfigError(f"Output folder {path.parent} does not exist; create it first.")
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except OSError as exc:
        raise ConfigError(f"Cannot write into {path.parent}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


class _UploadSink(io.RawIOBase):
    """The upload as pyarrow's sink: a failed chunk is a `StoreUnavailableError`."""

    def __init__(self, writer: Any, uri: str) -> None:
        super().__init__()
        self._writer, self._uri = writer, uri

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            self._writer.write(data)
        except Exception as exc:  # requests, google-auth, resumable-media, api-core kinds
            raise StoreUnavailableError(f"Cannot write {self._uri}: {cells.one_line(exc)}") from exc
        return len(data)

    def tell(self) -> int:
        return int(self._writer.tell())

    def flush(self) -> None:
        """Nothing to do: a resumable upload cannot flush without finalising."""

    def close(self) -> None:
        """The upload is finalised or cancelled by `open_output`, never by the writer."""


def _delete_if_corrupt(uri: str, exc: Exception) -> None:
    """After a checksum mismatch the object was finalised with the wrong bytes (the client
    checks only once GCS answers): delete exactly that generation, so nothing wrong stays
    at `uri`. A bucket with versioning keeps the previous output as a noncurrent version."""
    response = getattr(exc, "response", None)
    if type(exc).__name__ != "DataCorruption" or response is None:
        return
    try:
        generation = int(response.json()["generation"])
        _gcs_blob(uri).delete(if_generation_match=generation)
    except Exception:  # already gone, or unreachable: the error below says the write failed
        pass


def _cancel_upload(writer: Any) -> None:
    """Abandon a resumable upload so it never becomes an object (best effort)."""
    try:
        if hasattr(writer, "terminate"):
            writer.terminate()  # DELETE on the session URI, then close the buffer
        else:  # older clients: close the buffer without the finalising request
            writer._buffer.close()
    except Exception:  # the session expires unfinalised anyway
        pass
