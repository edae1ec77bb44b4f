"""``estate score``: batch predictions for a CSV/Parquet file, or BigQuery ML SQL (--bqml)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from estate.cli.commands._store_args import add_store_argument
from estate.contract.errors import ConfigError
from estate.storage.registry import read_bundle
from estate.storage.store import open_store


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """What `estate score` and `estate beam-score` share: the bundle and how to read rows."""
    parser.add_argument("--id-column", help="input column copied to the output's id column")
    add_store_argument(parser, old="--artifacts")
    parser.add_argument("--model", default="ames", help="model name (default %(default)s)")
    parser.add_argument("--version", help="bundle version (default: the serving one)")
    parser.add_argument("--chunk-rows", type=positive, default=16_384, help="rows per chunk")
    parser.add_argument("--threads", type=positive, default=1, help="onnxruntime threads")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "score",
        help="batch-score a CSV/Parquet file (local or gs://) through the ONNX bundle",
        description="Stream a CSV or Parquet file in chunks through the serving bundle and "
        "write id + prediction (+ interval or label) as CSV or Parquet; memory stays flat in "
        "the file size. With --bqml, print BigQuery ML SQL that imports the same ONNX file "
        "and runs ML.PREDICT over a table instead.",
    )
    parser.add_argument("--input", help="CSV, CSV.gz or Parquet: path or gs://bucket/object")
    parser.add_argument("--output", help="predictions .csv or .parquet: path or gs://")
    add_scoring_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    bq = parser.add_argument_group("BigQuery ML (--bqml)")
    bq.add_argument("--bqml", action="store_true", help="print CREATE MODEL + ML.PREDICT SQL")
    bq.add_argument("--bq-model", default="dataset.estate_model", help="BigQuery model name")
    bq.add_argument("--bq-table", default="dataset.houses", help="table to predict")
    bq.add_argument("--model-uri", help="gs:// URI of model.onnx (default: from --store)")
    parser.set_defaults(func=run)


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (0 would loop forever or mean "all cores")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def run(args: argparse.Namespace) -> int:
    bundle = read_bundle(open_store(args.store), args.model, args.version)
    if args.bqml:
        from estate.batch.bqml import bqml_sql, model_uri

        uri = args.model_uri or model_uri(args.store, bundle.manifest)
        print(bqml_sql(bundle.manifest, uri, args.bq_model, args.bq_table, args.id_column or "id"))
        return 0
    if not args.input or not args.output:
        raise ConfigError("Give --input and --output (or --bqml for SQL).")
    from estate.batch.score import score_file
    from estate.runtime.serving_model import ServingModel

    model = ServingModel(bundle.manifest, bundle.model_bytes, args.threads)
    result = score_file(
        model,
        args.input,
        args.output,
        id_column=args.id_column,
        chunk_rows=args.chunk_rows,
        quiet=args.quiet,
    )
    if result.missing_columns:
        shown = ", ".join(result.missing_columns[:10])
        more = len(result.missing_columns) - 10
        print(
            f"note: {len(result.missing_columns)} feature column(s) absent, imputed: {shown}"
            + (f" (+{more} more)" if more > 0 else ""),
            file=sys.stderr,
        )
    print(
        f"scored {result.rows:,} rows with {bundle.manifest.name} {bundle.manifest.version} "
        f"in {result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s) → {args.output}"
    )
    return 0
