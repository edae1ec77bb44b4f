"""BigQuery ML SQL for a bundle: import its ``model.onnx``, then ``ML.PREDICT`` over a table.

The graph takes two tensors, ``numeric`` (double ``[N, k]``) and ``categorical`` (string
``[N, m]``); BigQuery ML feeds a tensor from the query column of the same name, a 2-D
tensor from an ARRAY column. BigQuery arrays cannot hold NULL, so a missing number is
sent as NaN (the graph imputes the training median) and a null, blank or untrained
``'NA'`` category as packing does (`estate.runtime.packing`): ``'NA'`` when training saw
it, else the training mode. (Integral numbers in a text column, ``'60.0'``, are not
rewritten in SQL.) Not verified against a live BigQuery: see README.
"""

from __future__ import annotations

import re

from estate.contract.bundle import (
    CATEGORICAL_INPUT,
    MISSING_CATEGORY,
    MODEL_FILE,
    NUMERIC_INPUT,
    PREDICTION_OUTPUT,
    RAW_OUTPUT,
    Manifest,
    version_prefix,
)
from estate.contract.errors import ConfigError
from estate.runtime.packing import PackingRule


def model_uri(artifacts: str, manifest: Manifest) -> str:
    """gs:// URI of the bundle's ONNX file (BigQuery ML reads models from Cloud Storage)."""
    if not artifacts.startswith("gs://"):
        raise ConfigError(
            f"BigQuery ML imports models from Cloud Storage; --store {artifacts!r} is "
            "local. Pass the gs:// store the bundle was copied to (or --model-uri)."
        )
    return f"{artifacts.rstrip('/')}/{version_prefix(manifest.name, manifest.version)}/{MODEL_FILE}"


def _text(value: str) -> str:
    """A BigQuery string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "\\`") + "`"


def column_name(feature: str) -> str:
    """The BigQuery column of a feature: characters other than letters, digits and ``_``
    become ``_`` (``Lot.Frontage`` → ``Lot_Frontage``), as a CSV load with autodetect does."""
    return re.sub(r"[^A-Za-z0-9_]", "_", feature)


def bqml_sql(manifest: Manifest, uri: str, bq_model: str, table: str, id_column: str) -> str:
    """CREATE MODEL … MODEL_TYPE='ONNX' and an ML.PREDICT query in the graph's column order."""
    if "'" in uri:
        raise ConfigError(f"Model URI {uri!r} must not contain quotes.")
    indent = ",\n        "
    numeric = indent.join(
        f"IFNULL(SAFE_CAST({_ident(column_name(f.name))} AS FLOAT64), CAST('NaN' AS FLOAT64))"
        for f in manifest.input.numeric
    )
    fills = PackingRule(manifest.input).null_fill.tolist()
    categorical = indent.join(
        f"IFNULL(NULLIF(NULLIF(TRIM(CAST({_ident(column_name(c.name))} AS STRING)), ''), "
        f"'{MISSING_CATEGORY}'), {_text(fill)})"
        for c, fill in zip(manifest.input.categorical, fills, strict=True)
    )
    inputs = []
    if manifest.input.numeric:
        inputs.append(f"[\n        {numeric}\n      ] AS {NUMERIC_INPUT}")
    if manifest.input.categorical:
        inputs.append(f"[\n        {categorical}\n      ] AS {CATEGORICAL_INPUT}")
    out = manifest.output.name
    return f"""-- {manifest.name} {manifest.version}: {manifest.output.description}
CREATE OR REPLACE MODEL {_ident(bq_model)}
  OPTIONS (MODEL_TYPE = 'ONNX', MODEL_PATH = '{uri}');

-- {PREDICTION_OUTPUT} is the {out} in {manifest.output.units or "target units"}; {RAW_OUTPUT} \
is the model's own scale.
SELECT {_ident(id_column)}, {PREDICTION_OUTPUT} AS {_ident(out)}, {RAW_OUTPUT}
FROM ML.PREDICT(
  MODEL {_ident(bq_model)},
  (
    SELECT
      {_ident(id_column)},
      {("," + chr(10) + "      ").join(inputs)}
    FROM {_ident(table)}
  )
);
"""
