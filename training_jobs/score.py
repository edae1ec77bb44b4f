"""Batch scoring: stream a CSV/Parquet file through a bundle's ONNX graph, chunk by chunk.

Memory stays flat in the input size: pyarrow reads one block of rows at a time (CSV
streaming reader, Parquet row batches), the block is packed into the graph's two inputs
with vectorised pyarrow/numpy code, scored in one onnxruntime call, and appended to the
output (CSV or Parquet) before the next block is read. Works on local paths and gs://.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions.model import ServingModel
from model_export.bundle import MISSING_CATEGORY, Manifest, normalize_category
from model_export.errors import ConfigError, NotFoundError

DEFAULT_CHUNK_ROWS = 16_384


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


def open_binary(uri: str, mode: str, stack: ExitStack) -> tuple[IO[bytes], int | None]:
    """A streaming file object for a local path or gs:// object, and its size if known."""
    if uri.startswith("gs://"):
        storage: Any = importlib.import_module("google.cloud.storage")  # lazy: gs:// only
        bucket, _, name = uri[len("gs://") :].partition("/")
        if not name:
            raise ConfigError(f"{uri!r} names no object: use gs://BUCKET/PATH.")
        blob = storage.Client().bucket(bucket).blob(name)
        if mode == "rb":
            if not blob.exists():
                raise NotFoundError(f"{uri} does not exist.")
            blob.reload()
            return stack.enter_context(blob.open("rb", chunk_size=8 << 20)), blob.size
        return stack.enter_context(blob.open("wb", ignore_flush=True)), None
    path = Path(uri.removeprefix("file://"))
    if mode == "rb" and not path.is_file():
        raise NotFoundError(f"Input file {path} not found.")
    return stack.enter_context(path.open(mode)), (path.stat().st_size if mode == "rb" else None)


def read_batches(
    source: IO[bytes], uri: str, columns: dict[str, pa.DataType], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """Record batches of only the needed columns; absent ones come back as nulls."""
    if _is_parquet(uri):
        parquet = pq.ParquetFile(source)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=present)
        return
    stream: Any = source
    if uri.lower().endswith(".gz"):
        stream = pa.CompressedInputStream(pa.PythonFile(source, mode="r"), "gzip")
    # Blocks of 1 MiB keep the reader's buffers small; a block can still hold more rows
    # than `chunk_rows` (narrow files), so batches are sliced to `chunk_rows` below.
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=1 << 20, use_threads=False),
        convert_options=pacsv.ConvertOptions(
            column_types=columns,
            include_columns=list(columns),
            include_missing_columns=True,
            strings_can_be_null=False,
        ),
    )
    for batch in reader:
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _category_block(column: pa.Array | None, rows: int, impute: str) -> np.ndarray:
    """Normalised category strings, as training saw them (object array, shared strings)."""
    if column is None:
        return np.full(rows, impute, dtype=object)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        text = pc.if_else(pc.equal(text, ""), MISSING_CATEGORY, text)
        text = text.fill_null(MISSING_CATEGORY)
        encoded = pc.dictionary_encode(text)
        labels = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        block: np.ndarray = labels[encoded.indices.to_numpy(zero_copy_only=False)]
        return block
    return np.asarray([normalize_category(v) for v in column.to_pylist()], dtype=object)


def pack_batch(manifest: Manifest, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """The graph's two inputs for a record batch (vectorised `ServingModel.pack`).

    A missing number stays NaN (the graph imputes the training median); an absent
    categorical column gets the training mode, as the predict function does.
    """
    rows = batch.num_rows
    names = set(batch.schema.names)
    schema = manifest.input
    numeric = np.full((rows, len(schema.numeric)), np.nan, dtype=np.float64)
    for j, feat in enumerate(schema.numeric):
        if feat.name in names:
            column = batch.column(feat.name).cast(pa.float64())
            numeric[:, j] = column.to_numpy(zero_copy_only=False)
    categorical = np.empty((rows, len(schema.categorical)), dtype=object)
    for j, cat in enumerate(schema.categorical):
        column = batch.column(cat.name) if cat.name in names else None
        if column is not None and column.null_count == rows:
            column = None  # CSV: a column absent from the file reads as all nulls
        categorical[:, j] = _category_block(column, rows, cat.impute)
    return numeric, categorical


def absent_columns(batch: pa.RecordBatch, wanted: list[str]) -> list[str]:
    """Wanted columns the file lacks (all nulls: strings are never null when present)."""
    names = set(batch.schema.names)
    return [n for n in wanted if n not in names or batch.column(n).null_count == batch.num_rows]


def output_table(
    model: ServingModel, ids: pa.Array, prediction: np.ndarray, raw: np.ndarray
) -> pa.Table:
    """id + prediction, and the interval (regression) or the label (classification)."""
    m = model.manifest
    columns: dict[str, Any] = {"id": ids, m.output.name: prediction}
    if m.threshold is not None:
        positive = m.output.positive_label or "1"
        negative = m.output.negative_label or f"not {positive}"
        columns["label"] = np.where(prediction >= m.threshold.value, positive, negative)
    elif m.interval is not None:
        lo, hi = raw - m.interval.quantile, raw + m.interval.quantile
        if m.output.target_transform == "log":
            lo, hi = np.exp(lo), np.exp(hi)
        columns["lower"], columns["upper"] = lo, hi
    return pa.table(columns)


class Progress:
    """One progress line on stderr, redrawn in place on a terminal, else every ~5 s."""

    def __init__(self, size: int | None, quiet: bool) -> None:
        self.size, self.quiet = size, quiet
        self.start = self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()

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


def score_file(
    model: ServingModel,
    input_uri: str,
    output_uri: str,
    *,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quiet: bool = False,
) -> ScoreResult:
    """Score `input_uri` into `output_uri` (CSV or Parquet by suffix), one chunk at a time."""
    schema = model.manifest.input
    wanted: dict[str, pa.DataType] = {f.name: pa.float64() for f in schema.numeric}
    wanted.update({c.name: pa.string() for c in schema.categorical})
    if id_column:
        wanted[id_column] = pa.string()
    rows = 0
    start = time.perf_counter()
    missing: list[str] | None = None
    with ExitStack() as stack:
        source, size = open_binary(input_uri, "rb", stack)
        sink, _ = open_binary(output_uri, "wb", stack)
        progress = Progress(size, quiet)
        trim = _trimmer()
        writer: Any = None
        for batch in read_batches(source, input_uri, wanted, chunk_rows):
            if missing is None:
                missing = absent_columns(batch, list(wanted))
                if id_column in missing:
                    raise ConfigError(f"--id-column {id_column!r} is not a column of {input_uri}.")
            if batch.num_rows == 0:
                continue
            numeric, categorical = pack_batch(model.manifest, batch)
            prediction, raw = model.run(numeric, categorical)
            ids = (
                batch.column(id_column)
                if id_column
                else pa.array(np.arange(rows, rows + batch.num_rows))
            )
            table = output_table(model, ids, prediction, raw)
            if writer is None:
                writer = _writer(sink, output_uri, table.schema, stack)
            writer.write_table(table)
            rows += batch.num_rows
            progress.update(rows, _tell(source))
            del numeric, categorical, prediction, raw, table
            if trim is not None:
                trim(0)
        if writer is None:
            raise ConfigError(f"{input_uri} has no rows to score.")
        writer.close()
        progress.update(rows, size, final=True)
    return ScoreResult(rows, time.perf_counter() - start, missing or [])


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
