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

The steps, one module each: `_files` (open for reading, all-or-nothing writing), `_reader`
(record batches, read errors), `_columns` (packing, the checks, the output columns),
`_scorer` (`score_file`, the loop over chunks).
"""

from estate.batch.score._columns import absent_columns, check_numbers, output_table, pack_batch
from estate.batch.score._files import GCS_CHUNK_BYTES, open_binary, open_output, same_file
from estate.batch.score._reader import read_batches
from estate.batch.score._scorer import DEFAULT_CHUNK_ROWS, Progress, ScoreResult, score_file

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "GCS_CHUNK_BYTES",
    "Progress",
    "ScoreResult",
    "absent_columns",
    "check_numbers",
    "open_binary",
    "open_output",
    "output_table",
    "pack_batch",
    "read_batches",
    "same_file",
    "score_file",
]
