"""``estate beam-score``: the batch scorer on Apache Beam (Direct, Prism or Dataflow).

The same bundle, reader, packing rule and output columns as ``estate score``
(`estate.batch.score`), on an engine that already scales: each input file (a local
path, a ``gs://`` object, or a glob of them) is read in record batches by the reader
``estate score`` uses, the batches are spread over the workers (``Reshuffle``), and
Beam's ``RunInference`` scores them with `BundleModelHandler`, which loads the bundle
once per worker through the storage registry (checksum verified) into the runtime's
`ServingModel`. The predictions are written as Parquet with ``estate score``'s columns
(id, the output, and lower/upper or label).

This is the only module that imports ``apache_beam`` (an import-linter contract keeps it
out of serving); Beam comes from the ``beam`` extra, in its own environment
(``make beam-venv``: ``.venv-beam``).

Row ids: ``--id-column`` copies an input column (as ``estate score`` does); without it
the id is the row's number in its file, counted from 0, which matches ``estate score``
for a single input file.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.parquetio import WriteToParquetBatched
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from estate.batch.score import (
    DEFAULT_CHUNK_ROWS,
    check_numbers,
    open_binary,
    output_table,
    pack_batch,
    read_batches,
)
from estate.batch.score._columns import _check_outputs
from estate.contract.bundle import Manifest
from estate.contract.errors import ConfigError
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import open_store


@dataclass(frozen=True)
class Chunk:
    """A block of input rows on its way to the model: where it came from, for errors."""

    uri: str
    first_row: int  # data-row number of the block's first row, from 1 (as estate score)
    batch: pa.RecordBatch


def input_columns(manifest: Manifest, id_column: str | None) -> dict[str, pa.DataType]:
    """The columns the reader keeps and their types (as ``estate score`` reads them)."""
    wanted: dict[str, pa.DataType] = {f.name: pa.float64() for f in manifest.input.numeric}
    wanted.update({c.name: pa.string() for c in manifest.input.categorical})
    if id_column:
        wanted[id_column] = pa.string()
    return wanted


class ReadChunks(beam.DoFn):  # type: ignore[misc]
    """A matched file → its record batches, opened and read as ``estate score`` does."""

    def __init__(self, columns: dict[str, pa.DataType], chunk_rows: int) -> None:
        self.columns, self.chunk_rows = columns, chunk_rows

    def process(self, metadata: Any) -> Iterator[Chunk]:
        uri = metadata.path
        rows = 0
        with ExitStack() as stack:
            source, _ = open_binary(uri, "rb", stack)
            for batch in read_batches(source, uri, self.columns, self.chunk_rows):
                if batch.num_rows:
                    yield Chunk(uri, rows + 1, batch)
                    rows += batch.num_rows


class BundleModelHandler(ModelHandler[Chunk, pa.Table, ServingModel]):  # type: ignore[misc]
    """RunInference's handler: a verified bundle per worker, one ONNX call per chunk."""

    def __init__(
        self,
        artifacts: str,
        model_name: str,
        version: str,
        id_column: str | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__()
        self.artifacts, self.model_name, self.version = artifacts, model_name, version
        self.id_column, self.threads = id_column, threads

    def load_model(self) -> ServingModel:
        """Once per worker: read the bundle, verify its checksum, build the session."""
        bundle = read_bundle(open_store(self.artifacts), self.model_name, self.version)
        return ServingModel(bundle.manifest, bundle.model_bytes, self.threads)

    def run_inference(
        self,
        batch: Sequence[Chunk],
        model: ServingModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[pa.Table]:
        return [score_chunk(model, chunk, self.id_column) for chunk in batch]

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": 1}  # a chunk is already a batch

    def get_metrics_namespace(self) -> str:
        return "estate"


def score_chunk(model: ServingModel, chunk: Chunk, id_column: str | None) -> pa.Table:
    """``estate score``'s steps for one block: pack, check, one ONNX call, output table."""
    manifest = model.manifest
    numeric, categorical = pack_batch(manifest, chunk.batch, chunk.uri, chunk.first_row)
    check_numbers(numeric, manifest, chunk.uri, chunk.first_row)
    prediction, raw, scale = model.run(numeric, categorical)
    _check_outputs(prediction, chunk.uri, chunk.first_row)
    rows = chunk.batch.num_rows
    if id_column:
        ids = chunk.batch.column(id_column)  # estate score's reader: text (CSV) or as stored
    else:
        ids = pa.array(np.arange(chunk.first_row - 1, chunk.first_row - 1 + rows))
    return output_table(manifest, ids, prediction, raw, scale)


def output_schema(model: ServingModel, id_type: pa.DataType) -> pa.Schema:
    """The output's schema, from one all-imputed row through the real scoring steps."""
    numeric = np.full((1, len(model.numeric)), np.nan, dtype=np.float64)
    categorical = np.empty((1, len(model.categorical)), dtype=object)
    categorical[0, :] = [c.impute for c in model.categorical]
    prediction, raw, scale = model.run(numeric, categorical)
    ids = pa.array([None], type=id_type)
    schema: pa.Schema = output_table(model.manifest, ids, prediction, raw, scale).schema
    return schema


def first_file(input_pattern: str) -> str:
    """The first file `input_pattern` matches (checked before the pipeline starts)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        (result,) = FileSystems.match([input_pattern])
    except Exception as exc:  # BeamIOError: the folder or bucket is not there
        raise ConfigError(f"--input {input_pattern} matches no file ({exc}).") from None
    if not result.metadata_list:
        raise ConfigError(f"--input {input_pattern} matches no file: check the path or glob.")
    return str(sorted(m.path for m in result.metadata_list)[0])


def id_type(input_pattern: str, id_column: str | None) -> pa.DataType:
    """The id column's type as ``estate score`` writes it: row numbers are int64, a CSV
    column is text, a Parquet column keeps its type (read from the first matched file)."""
    first = first_file(input_pattern)
    if not id_column:
        return pa.int64()
    if not first.lower().endswith((".parquet", ".pq")):
        return pa.string()
    with ExitStack() as stack:
        source, _ = open_binary(first, "rb", stack)
        names = pq.ParquetFile(source).schema_arrow
    if id_column not in names.names:
        raise ConfigError(f"--id-column {id_column!r} is not a column of {first}.")
    kind: pa.DataType = names.field(id_column).type
    return kind


@dataclass
class BeamResult:
    version: str
    seconds: float
    output: str


def run_pipeline(
    input_pattern: str,
    output: str,
    *,
    artifacts: str,
    model_name: str,
    version: str | None = None,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    threads: int = 1,
    beam_args: list[str] | None = None,
) -> BeamResult:
    """Build and run the pipeline; returns when the runner has finished.

    `output` ending in ``.parquet`` is one file (``num_shards=1``, fine for the local
    runners); any other value is a prefix for sharded files
    ``<prefix>-00000-of-000NN.parquet``, which is what Dataflow should write.
    """
    bundle = read_bundle(open_store(artifacts), model_name, version)  # fail fast, verified
    model = ServingModel(bundle.manifest, bundle.model_bytes, threads)
    schema = output_schema(model, id_type(input_pattern, id_column))
    columns = input_columns(bundle.manifest, id_column)
    handler = BundleModelHandler(artifacts, model_name, bundle.manifest.version, id_column, threads)
    if output.lower().endswith((".parquet", ".pq")):
        sink = WriteToParquetBatched(output, schema, num_shards=1, shard_name_template="")
    elif output.lower().endswith(".csv"):
        raise ConfigError("beam-score writes Parquet: give --output out.parquet or a prefix.")
    else:
        sink = WriteToParquetBatched(output, schema, file_name_suffix=".parquet")
    options = PipelineOptions(beam_args or [], save_main_session=False)
    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "Match" >> fileio.MatchFiles(input_pattern, fileio.EmptyMatchTreatment.DISALLOW)
            | "Read" >> beam.ParDo(ReadChunks(columns, chunk_rows))
            | "Spread" >> beam.Reshuffle()
            | "Score" >> RunInference(handler)
            | "Write" >> sink
        )
    return BeamResult(bundle.manifest.version, time.perf_counter() - start, output)
