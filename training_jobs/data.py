"""Read a tabular data set (CSV, gzipped CSV or Parquet; local path or gs://) with lineage."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from model_export.bundle import sha256_hex
from model_export.errors import ConfigError, NotFoundError
from model_export.store import GCSStore


@dataclass(frozen=True)
class Table:
    """A data set and the facts lineage needs: where from, and a hash of its exact bytes."""

    frame: pd.DataFrame
    uri: str
    sha256: str
    size: int
    raw: bytes = field(default=b"", repr=False)  # the exact bytes, for the lineage snapshot


def read_bytes(uri: str) -> bytes:
    """The raw bytes at a local path or ``gs://bucket/object``."""
    if uri.startswith("gs://"):
        bucket, _, name = uri[len("gs://") :].partition("/")
        if not name:
            raise ConfigError(f"{uri!r} names a bucket but no object: use gs://BUCKET/PATH.")
        return GCSStore(f"gs://{bucket}").read_bytes(name)
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        raise NotFoundError(f"Data file {path} not found; pass --data PATH or gs://BUCKET/PATH.")
    return path.read_bytes()


def parse_table(data: bytes, uri: str) -> pd.DataFrame:
    """Parse by file suffix: .csv, .csv.gz, .parquet/.pq."""
    name = uri.lower()
    buffer = io.BytesIO(data)
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(buffer)
        if name.endswith((".csv", ".csv.gz", ".gz")):
            return pd.read_csv(buffer, compression="gzip" if name.endswith(".gz") else None)
    except Exception as exc:  # pandas/pyarrow raise many kinds for a bad file
        raise ConfigError(f"Cannot parse {uri} as a table: {exc}") from exc
    raise ConfigError(f"Unknown data format for {uri}: use .csv, .csv.gz or .parquet.")


def load_table(uri: str) -> Table:
    data = read_bytes(uri)
    return Table(
        frame=parse_table(data, uri), uri=uri, sha256=sha256_hex(data), size=len(data), raw=data
    )
