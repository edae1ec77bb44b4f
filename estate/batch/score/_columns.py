"""A record batch into the graph's two inputs (the one packing rule), the checks on
what goes in and comes out, and the output columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from estate.batch.score._reader import _IMPUTE
from estate.contract import cells
from estate.contract.bundle import Manifest
from estate.contract.cells import FLOAT32_MAX
from estate.contract.errors import ConfigError
from estate.runtime.outputs import intervals, labels
from estate.runtime.packing import CategoryColumn, PackingRule, pack_table


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


def _check_outputs(prediction: np.ndarray, uri: str, first_row: int) -> None:
    """An infinite or NaN prediction is refused, naming its row (extreme but finite inputs)."""
    bad = ~np.isfinite(prediction)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"{uri}: data row {first_row + i}: the model's output is not finite "
            f"({prediction[i]}); its inputs are far outside the training range. Check the row."
        )
