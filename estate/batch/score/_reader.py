"""CSV/Parquet files as record batches of the needed columns, and a read that fails as
one `ConfigError` naming the file, column and row."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from estate.batch.score._files import open_binary
from estate.contract import cells
from estate.contract.errors import ConfigError


def _is_parquet(uri: str) -> bool:
    return uri.lower().endswith((".parquet", ".pq"))


def read_batches(
    source: IO[bytes], uri: str, columns: dict[str, pa.DataType], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """Record batches of only the needed columns the file has (CSV: absent numeric
    columns come back as nulls, absent string columns are left out, as in Parquet).

    A file pyarrow cannot read (empty, corrupt gzip or Parquet, a cell that does not
    convert, bytes that are not UTF-8) raises one `ConfigError` naming the file, and the
    column and row when the reader says which.
    """
    try:
        yield from _batches(source, uri, columns, chunk_rows)
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as exc:
        raise _read_error(uri, exc) from None


def _batches(
    source: IO[bytes], uri: str, columns: dict[str, pa.DataType], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    if _is_parquet(uri):
        parquet = pq.ParquetFile(source)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=present)
        return
    # Blocks of 1 MiB keep the reader's buffers small; a block can still hold more rows
    # than `chunk_rows` (narrow files), so batches are sliced to `chunk_rows` below.
    reader = pacsv.open_csv(
        _csv_stream(source, uri),
        read_options=pacsv.ReadOptions(block_size=1 << 20, use_threads=False),
        convert_options=pacsv.ConvertOptions(
            column_types=columns,
            include_columns=list(columns),
            include_missing_columns=True,
            strings_can_be_null=False,
        ),
    )
    absent: list[str] | None = None
    for batch in reader:
        if absent is None and batch.num_rows:
            absent = [  # a string cell is never null, so an all-null one is not in the file
                f.name
                for f, column in zip(batch.schema, batch.columns, strict=True)
                if pa.types.is_string(f.type) and column.null_count == batch.num_rows
            ]
        if absent:
            batch = batch.drop_columns(absent)
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _csv_stream(source: IO[bytes], uri: str) -> Any:
    if uri.lower().endswith(".gz"):
        return pa.CompressedInputStream(pa.PythonFile(source, mode="r"), "gzip")
    return source


_IMPUTE = "; fix the cell, or leave it empty to impute it."

#: pyarrow's message for a cell that does not convert; its row counts the header as row 1.
_CSV_CELL = re.compile(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+)(.*)")


#: pyarrow's message for a row whose cell count differs (the row is not always given).
_CSV_RAGGED = re.compile(r"CSV parse error: (?:Row #(\d+): )?Expected (\d+) columns, got (\d+)")


def _read_error(uri: str, exc: BaseException) -> ConfigError:
    text = cells.one_line(exc)
    cell = _CSV_CELL.search(text)
    if cell:
        index, line, kind, rest = int(cell[1]), int(cell[2]), cell[3], cell[4]
        column = _csv_column_name(uri, index)
        if kind == "string":  # the only way a string cell fails is its encoding
            return ConfigError(cells.not_utf8(uri, line - 1, column))
        value = rest.partition("invalid value ")[2] or rest.strip(": ")
        return ConfigError(cells.not_a_number(uri, line - 1, column, value, _IMPUTE))
    parse = _CSV_RAGGED.search(text)
    if parse:
        expected, found = int(parse[2]), int(parse[3])
        if parse[1]:
            return ConfigError(cells.ragged(uri, int(parse[1]) - 1, found, expected))
        ragged = _ragged_row(uri)
        if ragged is not None:
            return ConfigError(cells.ragged(uri, *ragged))
    if text == "Empty CSV file":
        return ConfigError(f"{uri} is empty: expected a header row and data rows.")
    lowered = text.lower()
    if uri.lower().endswith(".gz") and any(w in lowered for w in ("zlib", "gzip", "compress")):
        return ConfigError(f"{uri} is not a readable gzip file ({text}); re-compress it.")
    if _is_parquet(uri):
        return ConfigError(f"{uri} is not a readable Parquet file ({text}); write it again.")
    return ConfigError(f"Cannot read {uri} as CSV: {text}")


def _ragged_row(uri: str) -> tuple[int, int, int] | None:
    """(data row, its cells, the header's) of the first row whose cell count differs from
    the header's: pyarrow names no row for it (read again: only on the error path)."""
    try:
        with ExitStack() as stack:
            source, _ = open_binary(uri, "rb", stack)
            raw: Any = gzip.GzipFile(fileobj=source) if uri.lower().endswith(".gz") else source
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            rows = csv.reader(text)
            header = len(next(rows))
            for number, row in enumerate(rows, start=1):
                if row and len(row) != header:
                    return number, len(row), header
    except Exception:  # the generic message is raised instead
        return None
    return None


def _csv_column_name(uri: str, index: int) -> str:
    """The header's name of column `index` (read again: only on the error path)."""
    try:
        with ExitStack() as stack:
            source, _ = open_binary(uri, "rb", stack)
            reader = pacsv.open_csv(
                _csv_stream(source, uri),
                read_options=pacsv.ReadOptions(block_size=1 << 16, use_threads=False),
                convert_options=pacsv.ConvertOptions(check_utf8=False),
            )
            names: list[str] = reader.schema.names
    except Exception:  # a name is a nicety in an error that is raised anyway
        names = []
    return names[index] if index < len(names) else f"#{index + 1}"
