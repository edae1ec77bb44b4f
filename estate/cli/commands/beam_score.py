"""``estate beam-score``: ``estate score`` on Apache Beam (Direct, Prism or Dataflow)."""

from __future__ import annotations

import argparse
from typing import Any

from estate.cli.commands.score import add_scoring_arguments

EPILOG = """\
Beam options go after `--`, unchanged. On Dataflow (infra/ prints the options:
terraform -chdir=infra output -raw dataflow_options), with the project as a wheel:

  .venv-beam/bin/pip wheel --no-deps -w dist .
  estate beam-score --input 'gs://B/houses/*.parquet' --output gs://B/scores/houses \\
    --store gs://B/artifacts --id-column PID -- \\
    --runner DataflowRunner --project P --region us-central1 \\
    --temp_location gs://B/dataflow/tmp --staging_location gs://B/dataflow/staging \\
    --service_account_email estate-dataflow@P.iam.gserviceaccount.com \\
    --extra_package dist/estate_advisor-0.1.0-py3-none-any.whl

or --sdk_container_image with an image built FROM apache/beam_python3.11_sdk that has the
wheel installed. Locally: --runner DirectRunner (default) or --runner PrismRunner.
"""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "beam-score",
        help="batch-score CSV/Parquet files on Apache Beam (Direct, Prism, Dataflow)",
        description="The same bundle, reader, packing and output columns as `estate score`, "
        "run by Apache Beam's RunInference: the bundle is loaded once per worker and its "
        "checksum verified. Writes Parquet. Needs the beam extra (make beam-venv).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="CSV/CSV.gz/Parquet path, gs:// or glob")
    parser.add_argument(
        "--output", required=True, help="out.parquet (one file) or a prefix (sharded files)"
    )
    add_scoring_arguments(parser)
    parser.add_argument(
        "--runner",
        default="DirectRunner",
        help="DirectRunner (default), PrismRunner or DataflowRunner; more Beam options after --",
    )
    parser.add_argument("beam_args", nargs=argparse.REMAINDER, help="Beam pipeline options")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from estate.batch.beam import run_pipeline
    except ImportError as exc:
        from estate.contract.errors import ConfigError

        raise ConfigError(
            f"Apache Beam is not installed ({exc}). Run `make beam-venv` and use "
            ".venv-beam/bin/estate beam-score, or pip install 'estate-advisor[beam]'."
        ) from None
    extra = [a for a in args.beam_args if a != "--"]
    if not any(a.startswith("--runner") for a in extra):
        extra = [f"--runner={args.runner}", *extra]
    result = run_pipeline(
        args.input,
        args.output,
        artifacts=args.store,
        model_name=args.model,
        version=args.version,
        id_column=args.id_column,
        chunk_rows=args.chunk_rows,
        threads=args.threads,
        beam_args=extra,
    )
    print(
        f"scored {args.input} with {args.model} {result.version} in {result.seconds:.1f}s "
        f"→ {result.output}"
    )
    return 0
