"""Batch scoring: stream a CSV/Parquet file through a bundle's ONNX graph, chunk by chunk.

Memory stays flat in the input size: pyarrow reads one block of rows at a time (CSV
streaming reader, Parquet row batches), the block is packed into the graph's two inputs
with vectorised pyarrow/numpy code, scored in one onnxruntime call, and appended to the
output (CSV or Parquet) before the next block is read. Works on local paths and gs://.

The output appears at its name only when it is complete: a local file is written to a
hidden temporary sibling and renamed over the target; a gs:// object is one resumable
upload that is finalised on success and cancelled on any error, so a failed run leaves
the previous output (or nothing), never a truncated file. Bad input (a cell that is not
a number, bytes that are not UTF-8, a corrupt gzip or Parquet file, a value the float32
graph cannot hold) stops the run with one `ConfigError` naming the file, column and row.
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import importlib
import io
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from estate.contract import cells
from estate.contract.bundle import Manifest
from estate.contract.cells import FLOAT32_MAX
from estate.contract.errors import ConfigError, NotFoundError, StoreUnavailableError
from estate.runtime.outputs import intervals, labels
from estate.runtime.packing import CategoryColumn, PackingRule, pack_table
from estate.runtime.serving_model import ServingModel
from estate.storage.uris import local_path, split_gs

DEFAULT_CHUNK_ROWS = 16_384
#: Bytes per resumable-upload request to Cloud Storage (a multiple of 256 KiB).
GCS_CHUNK_BYTES = 8 << 20


@dataclass
class ScoreResult:
    rows: int
    seconds: float
    missing_columns: list[str]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _is_parquet(uri: str) -> bool:
    return uri.lower().endswith((".parquet", ".pq"))


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


def check_numbers(numeric: np.ndarray, manifest: Manifest, uri: str, first_row: int) -> None:
    """Refuse ±inf and magnitudes float32 cannot hold (the graph computes in float32).

    NaN is a missing value, imputed like serving does. `first_row` is the data-row
    number of the block's first row (from 1, the header not counted)."""
    bad = np.abs(numeric) > FLOAT32_MAX  # NaN compares False; inf is caught
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        name = manifest.input.numeric[j].name
        raise ConfigError(cells.out_of_range(uri, first_row + i, name, numeric[i, j]))


def _category_column(column: pa.Array | pa.ChunkedArray) -> CategoryColumn:
    """A column dictionary-encoded (string, dictionary, number or all-null; a null is a
    null value), so the packing rule runs once per distinct value."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    values = [*column.dictionary.to_pylist(), None]
    codes = column.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False)
    return CategoryColumn(values, codes)


def pack_batch(
    manifest: Manifest, batch: pa.RecordBatch, uri: str = "input", first_row: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's two inputs for a record batch, by the one packing rule serving and
    training use (`estate.runtime.packing`): a missing number stays NaN (the graph
    imputes the training median), a null or blank category is "NA" or the mode, a column
    the file lacks is the mode. A value that is not a number is a `ConfigError` naming
    `uri`, the column and the row.
    """
    rows = batch.num_rows
    names = set(batch.schema.names)
    schema = manifest.input
    numeric = np.full((rows, len(schema.numeric)), np.nan, dtype=np.float64)
    for j, feat in enumerate(schema.numeric):
        if feat.name in names:
            column = _as_float(batch.column(feat.name), feat.name, uri, first_row)
            numeric[:, j] = column.to_numpy(zero_copy_only=False)
    columns = [
        _category_column(batch.column(c.name)) if c.name in names else None
        for c in schema.categorical
    ]
    return pack_table(PackingRule(schema), numeric, columns)


def _as_float(column: pa.Array, name: str, uri: str, first_row: int) -> pa.Array:
    try:
        return column.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    for i, value in enumerate(column.to_pylist()):  # error path only: find the cell
        try:
            float(value)
        except (TypeError, ValueError):
            if value is None:
                continue
            text = repr(str(value)[:80])
            raise ConfigError(cells.not_a_number(uri, first_row + i, name, text, _IMPUTE)) from None
    raise ConfigError(
        f"{uri}: column {name!r} has type {column.type}, which does not convert to a number."
    )


def absent_columns(batch: pa.RecordBatch, wanted: list[str]) -> list[str]:
    """Wanted columns the file lacks, or that are all null in its first batch."""
    names = set(batch.schema.names)
    return [n for n in wanted if n not in names or batch.column(n).null_count == batch.num_rows]


def output_table(
    manifest: Manifest,
    ids: pa.Array,
    prediction: np.ndarray,
    raw: np.ndarray,
    scale: np.ndarray | None,
) -> pa.Table:
    """id + prediction, and the interval (regression) or the label (classification)."""
    m = manifest
    columns: dict[str, Any] = {"id": ids, m.output.name: prediction}
    label, bounds = labels(prediction, m), intervals(raw, m, scale)  # as predict answers
    if label is not None:
        columns["label"] = pa.array(label.tolist(), type=pa.string())
    elif bounds is not None:
        columns["lower"], columns["upper"] = bounds[:, 0], bounds[:, 1]
    return pa.table(columns)


class Progress:
    """One progress line on stderr, redrawn in place on a terminal, else every ~5 s."""

    def __init__(self, size: int | None, quiet: bool) -> None:
        self.size, self.quiet = size, quiet
        self.start = self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.open_line = False  # a redrawn line without its newline yet

    def update(self, rows: int, position: int | None, final: bool = False) -> None:
        now = time.perf_counter()
        if self.quiet or (not final and now - self.last < (0.2 if self.tty else 5.0)):
            return
        self.last = now
        rate = rows / max(now - self.start, 1e-9)
        done = ""
        if self.size and position is not None:
            share = min(position / self.size, 1.0)
            bar = "#" * int(share * 30)
            done = f"[{bar:<30}] {share:6.1%} "
        line = f"{done}{rows:,} rows, {rate:,.0f} rows/s"
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)
        self.open_line = not end

    def stop(self) -> None:
        """End a redrawn line, so an error message starts on a line of its own."""
        if self.open_line:
            print(file=sys.stderr, flush=True)
            self.open_line = False


def score_file(
    model: ServingModel,
    input_uri: str,
    output_uri: str,
    *,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quiet: bool = False,
) -> ScoreResult:
    """Score `input_uri` into `output_uri` (CSV or Parquet by suffix), one chunk at a time.

    All or nothing: on any error the output name keeps what it held before (or nothing).
    """
    if same_file(input_uri, output_uri):
        raise ConfigError(
            f"--output {output_uri} is the --input file: writing it would destroy the data "
            "before it is read. Write the predictions to another file."
        )
    if not output_uri.lower().endswith((".csv", ".parquet", ".pq")):
        raise ConfigError(f"Output {output_uri!r}: write .csv or .parquet.")
    schema = model.manifest.input
    wanted: dict[str, pa.DataType] = {f.name: pa.float64() for f in schema.numeric}
    wanted.update({c.name: pa.string() for c in schema.categorical})
    if id_column:
        wanted[id_column] = pa.string()
    features = [f.name for f in schema.numeric] + [c.name for c in schema.categorical]
    rows = 0
    start = time.perf_counter()
    missing: list[str] | None = None
    with ExitStack() as stack:
        source, size = open_binary(input_uri, "rb", stack)
        sink = stack.enter_context(open_output(output_uri))
        progress = Progress(size, quiet)
        stack.callback(progress.stop)
        trim = _trimmer()
        writer: Any = None
        for batch in read_batches(source, input_uri, wanted, chunk_rows):
            if missing is None:
                missing = absent_columns(batch, list(wanted))
                if id_column in missing:
                    raise ConfigError(f"--id-column {id_column!r} is not a column of {input_uri}.")
                if features and all(f in missing for f in features):
                    raise ConfigError(
                        f"{input_uri} has none of the model's {len(features)} feature columns "
                        f"({', '.join(features[:5])}, ...): check the file and its delimiter."
                    )
            if batch.num_rows == 0:
                continue
            numeric, categorical = pack_batch(model.manifest, batch, input_uri, rows + 1)
            check_numbers(numeric, model.manifest, input_uri, rows + 1)
            prediction, raw, scale = model.run(numeric, categorical)
            _check_outputs(prediction, input_uri, rows + 1)
            ids = (
                batch.column(id_column)
                if id_column
                else pa.array(np.arange(rows, rows + batch.num_rows))
            )
            table = output_table(model.manifest, ids, prediction, raw, scale)
            if writer is None:
                writer = _writer(sink, output_uri, table.schema, stack)
            writer.write_table(table)
            rows += batch.num_rows
            progress.update(rows, _tell(source))
            del numeric, categorical, prediction, raw, scale, table
            if trim is not None:
                trim(0)
        if writer is None:
            raise ConfigError(f"{input_uri} has no data rows to score.")
        writer.close()
        progress.update(rows, size, final=True)
    return ScoreResult(rows, time.perf_counter() - start, missing or [])


def _check_outputs(prediction: np.ndarray, uri: str, first_row: int) -> None:
    """An infinite or NaN prediction is refused, naming its row (extreme but finite inputs)."""
    bad = ~np.isfinite(prediction)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"{uri}: data row {first_row + i}: the model's output is not finite "
            f"({prediction[i]}); its inputs are far outside the training range. Check the row."
        )


def _trimmer() -> Any:
    """glibc's ``malloc_trim``, or None off glibc.

    Each chunk allocates and frees many small blocks (onnxruntime's string tensors, numpy
    object arrays); glibc keeps the freed memory in fragmented arenas, so RSS would creep
    up with the number of chunks. Returning it after each chunk keeps the peak flat.
    """
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _tell(source: IO[bytes]) -> int | None:
    try:
        return source.tell()
    except (OSError, ValueError):
        return None


def _writer(sink: IO[bytes], uri: str, schema: pa.Schema, stack: ExitStack) -> Any:
    if _is_parquet(uri):
        return pq.ParquetWriter(sink, schema)
    if uri.lower().endswith(".csv"):
        return pacsv.CSVWriter(sink, schema)
    raise ConfigError(f"Output {uri!r}: write .csv or .parquet.")
