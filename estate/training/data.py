"""Read a tabular data set (CSV, gzipped CSV or Parquet; local path or gs://) with lineage.

A file that cannot be a training table is refused here, before anything is trained or
written, with one `ConfigError` that names the file and, where there is one, the column
and the data row (counted from 1, the header not counted): empty or header-only files,
corrupt gzip or Parquet, bytes that are not UTF-8, text in a numeric column, and numbers
the float32 ONNX graph cannot hold.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from estate.contract import cells
from estate.contract.bundle import sha256_hex
from estate.contract.cells import FLOAT32_MAX
from estate.contract.errors import ConfigError
from estate.storage.uris import read_bytes


@dataclass(frozen=True)
class Table:
    """A data set and the facts lineage needs: where from, and a hash of its exact bytes."""

    frame: pd.DataFrame
    uri: str
    sha256: str
    size: int
    raw: bytes = field(default=b"", repr=False)  # the exact bytes, for the lineage snapshot


def parse_table(data: bytes, uri: str) -> pd.DataFrame:
    """Parse by file suffix: .csv, .csv.gz, .parquet/.pq; refuse a table with no rows."""
    name = uri.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises many kinds for a bad file
            raise ConfigError(
                f"{uri} is not a readable Parquet file ({cells.one_line(exc)}); write it again."
            ) from None
    elif name.endswith((".csv", ".csv.gz", ".gz")):
        text = gunzip(data, uri) if name.endswith(".gz") else data
        check_utf8(text, uri)
        if not text.strip():
            raise ConfigError(f"{uri} is empty: expected a header row and data rows.")
        try:
            frame = pd.read_csv(io.BytesIO(text))
        except Exception as exc:  # pandas raises many kinds for a malformed CSV
            ragged = _RAGGED.search(str(exc))
            if ragged:
                expected, line, saw = (int(g) for g in ragged.groups())
                raise ConfigError(cells.ragged(uri, line - 1, saw, expected)) from None
            raise ConfigError(f"Cannot read {uri} as CSV: {cells.one_line(exc)}") from None
    else:
        raise ConfigError(f"Unknown data format for {uri}: use .csv, .csv.gz or .parquet.")
    if len(frame) == 0:
        raise ConfigError(f"{uri} has a header but no data rows.")
    return frame


#: pandas' message for a row with more cells than the header; its line counts the header.
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def gunzip(data: bytes, uri: str) -> bytes:
    """The decompressed bytes; a corrupt or truncated gzip file is a `ConfigError`."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(
            f"{uri} is not a readable gzip file ({cells.one_line(exc) or 'truncated'}); "
            "re-compress it or give the plain .csv."
        ) from None


def check_utf8(data: bytes, uri: str) -> None:
    """Refuse bytes that are not UTF-8, naming the data row and the column they are in."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        if line == 1:
            raise ConfigError(
                f"{uri}: the header row is not valid UTF-8; save the file as UTF-8."
            ) from None
        header = next(csv.reader([data[: data.find(b"\n")].decode("utf-8", "replace")]), [])
        before = data[line_start : exc.start].decode("utf-8", "replace")
        index = len(next(csv.reader([before]), [""])) - 1 if before else 0
        column = header[index].strip() if 0 <= index < len(header) else f"#{index + 1}"
        raise ConfigError(cells.not_utf8(uri, line - 1, column)) from None


def check_columns(frame: pd.DataFrame, uri: str, categorical: Collection[str] = ()) -> None:
    """Refuse text in a numeric column and numbers a float32 feature cannot hold.

    A column is numeric when pandas parsed it as numbers, or when most of its filled
    cells are numbers (then the others are typos, not categories: a column that is
    meant to hold categories goes in the config's `categorical`). NaN is a missing value
    (imputed); ±inf and magnitudes above float32's are refused.
    """
    for name in frame.columns:
        if name in categorical:
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.abs(values) > FLOAT32_MAX  # NaN compares False; ±inf is caught
            if bad.any():
                i = int(np.argmax(bad))
                raise ConfigError(cells.out_of_range(uri, i + 1, str(name), values[i]))
            continue
        filled = column.notna() & (column.astype(str).str.strip() != "")
        numbers = pd.to_numeric(column.where(filled), errors="coerce")
        parsed = numbers.notna()
        if int(filled.sum()) and int(parsed.sum()) * 2 > int(filled.sum()):
            i = int(np.argmax((filled & ~parsed).to_numpy()))
            fix = (
                " (the column's other cells are); fix the cell, or list the column in the "
                "config's `categorical` to treat it as categories."
            )
            value = repr(str(column.iloc[i])[:80])
            raise ConfigError(cells.not_a_number(uri, i + 1, str(name), value, fix))


def load_table(uri: str) -> Table:
    data = read_bytes(uri)
    return Table(
        frame=parse_table(data, uri), uri=uri, sha256=sha256_hex(data), size=len(data), raw=data
    )
