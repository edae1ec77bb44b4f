"""`score_file`: the loop that reads, packs, scores and writes one chunk at a time, with
its progress line."""

from __future__ import annotations

import ctypes
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from estate.batch.score._columns import (
    _check_outputs,
    absent_columns,
    check_numbers,
    output_table,
    pack_batch,
)
from estate.batch.score._files import open_binary, open_output, same_file
from estate.batch.score._reader import _is_parquet, read_batches
from estate.contract.errors import ConfigError
from estate.runtime.serving_model import ServingModel

DEFAULT_CHUNK_ROWS = 16_384


@dataclass
class ScoreResult:
    rows: int
    seconds: float
    missing_columns: list[str]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


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
