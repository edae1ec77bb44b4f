"""BigQuery ML SQL for a bundle: import its ``model.onnx``, then ``ML.PREDICT`` over a table.

The graph takes two tensors, ``numeric`` (double ``[N, k]``) and ``categorical`` (string
``[N, m]``); BigQuery ML feeds a tensor from the query column of the same name, a 2-D
tensor from an ARRAY column. BigQuery arrays cannot hold NULL, so a missing number is
sent as NaN (the graph imputes the training median) and a null, blank or untrained
``'NA'`` category as packing does (`estate.runtime.packing`): ``'NA'`` when training saw
it, else the training mode. (Integral numbers in a text column, ``'60.0'``, are not
rewritten in SQL.) Not verified against a live BigQuery: see README.

Around ``ML.PREDICT`` the query adds what predict answers beside the prediction, by the
rule of `estate.runtime.outputs` and from the same manifest fields: the interval
(``lower``/``upper``: raw ± the conformal quantile, or ± quantile · the ``scale`` output
clipped to its training range with NULL or NaN as the widest; then the inverse
transform) or the classification ``label``. `output_columns` is that part on its own,
which the tests evaluate against `intervals` and `labels`.
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
    SCALE_OUTPUT,
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


def _number(value: float) -> str:
    """A FLOAT64 literal that reads back as exactly `value` (Python's shortest repr)."""
    text = repr(float(value))
    if text in ("nan", "inf", "-inf"):
        raise ConfigError(f"The manifest holds a non-finite interval constant ({text}).")
    return text if any(c in text for c in ".e") else text + ".0"


def served_scale_sql(manifest: Manifest) -> str | None:
    """`estate.runtime.outputs.served_scale` in SQL: the graph's scale clipped to the
    training range, NULL or NaN read as the widest. None without an adaptive band."""
    spec = manifest.interval
    if spec is None or spec.adaptive is None:
        return None
    a = spec.adaptive
    low, high = _number(a.scale_min), _number(a.scale_max)
    # GREATEST/LEAST answer NaN for a NaN argument: the NaN test comes first.
    return (
        f"IF({SCALE_OUTPUT} IS NULL OR IS_NAN({SCALE_OUTPUT}), {high}, "
        f"LEAST(GREATEST({SCALE_OUTPUT}, {low}), {high}))"
    )


def output_columns(manifest: Manifest) -> list[tuple[str, str]]:
    """(column, SQL expression over ML.PREDICT's output) for what predict answers beside
    the prediction: ``lower`` and ``upper`` (`estate.runtime.outputs.intervals`) or
    ``label`` (`estate.runtime.outputs.labels`); [] when the bundle has neither.

    ``raw - q`` and ``raw - q · s`` are the same IEEE operations as serving's
    ``raw + (-q)`` and ``raw + s · (-q)``, so the bounds agree to the exp's last bit. The
    exp is ``SAFE.EXP``: NULL where serving's bound would be infinite, instead of an
    overflow error failing the whole query.
    """
    threshold, spec = manifest.threshold, manifest.interval
    if threshold is not None:
        positive = manifest.output.positive_label
        negative = manifest.output.negative_label or f"not {positive}"
        yes = "NULL" if positive is None else _text(positive)
        label = f"IF({PREDICTION_OUTPUT} >= {_number(threshold.value)}, {yes}, {_text(negative)})"
        return [("label", label)]
    if spec is None:
        return []
    served = served_scale_sql(manifest)
    if served is None:
        q = _number(spec.quantile)
        half = q
    else:
        assert spec.adaptive is not None
        q = _number(spec.adaptive.quantile)
        half = f"{q} * {served}"
    lower, upper = f"{RAW_OUTPUT} - {half}", f"{RAW_OUTPUT} + {half}"
    if manifest.output.target_transform == "log":
        lower, upper = f"SAFE.EXP({lower})", f"SAFE.EXP({upper})"
    return [("lower", lower), ("upper", upper)]


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
    extra = "".join(f",\n  {sql} AS {_ident(name)}" for name, sql in output_columns(manifest))
    return f"""-- {manifest.name} {manifest.version}: {manifest.output.description}
CREATE OR REPLACE MODEL {_ident(bq_model)}
  OPTIONS (MODEL_TYPE = 'ONNX', MODEL_PATH = '{uri}');

-- {PREDICTION_OUTPUT} is the {out} in {manifest.output.units or "target units"}; {RAW_OUTPUT} \
is the model's own scale.{_columns_note(manifest)}
SELECT {_ident(id_column)}, {PREDICTION_OUTPUT} AS {_ident(out)}, {RAW_OUTPUT}{extra}
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


def _columns_note(manifest: Manifest) -> str:
    spec = manifest.interval
    if manifest.threshold is not None:
        return f"\n-- label: the class at threshold {manifest.threshold.value}, as predict answers."
    if spec is None:
        return ""
    band = "adaptive (raw ± quantile · scale)" if spec.adaptive else "fixed (raw ± quantile)"
    return (
        f"\n-- lower, upper: the {spec.level:.0%} conformal interval, {band}, as predict answers."
    )
