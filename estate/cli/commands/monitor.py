"""``estate monitor``: PSI drift of logged predictions; exits 1 above the threshold."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from estate.cli.commands._store_args import add_store_argument
from estate.contract.errors import ConfigError
from estate.ops.monitor import drift_report, format_report, read_predictions
from estate.runtime import drift
from estate.storage.registry import read_manifest, serving_version
from estate.storage.store import open_store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "monitor",
        help="drift report (PSI per feature and prediction) from prediction logs",
        description="Compare logged predictions (JSON lines from the predict function) with "
        "the reference histograms stored in the bundle at training time. Exit status: 0 "
        "no drift, 1 drift above --threshold (so a scheduler can alert), 2 usage error.",
    )
    parser.add_argument(
        "--logs", required=True, help="JSONL file or folder, gs://bucket/file or gs://bucket/dir/"
    )
    add_store_argument(parser, old="--artifacts")
    parser.add_argument("--model", default="ames", help="model name (default %(default)s)")
    parser.add_argument("--version", help="bundle version (default: the serving one)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=drift.DRIFT_PSI,
        help="PSI above which a feature counts as drifted (default %(default)s)",
    )
    parser.add_argument("--min-rows", type=int, default=100, help="refuse fewer predictions")
    parser.add_argument("--all", action="store_true", help="show every feature, not the top 15")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    version = args.version or serving_version(store, args.model)
    manifest = read_manifest(store, args.model, version)
    report = drift_report(manifest, list(read_predictions(args.logs)), args.threshold)
    if report.rows < args.min_rows:
        raise ConfigError(
            f"Only {report.rows} logged predictions of {args.model}/{version}; PSI on fewer "
            f"than {args.min_rows} rows is noise. Collect more or lower --min-rows."
        )
    print(format_report(report, None if args.all else 15))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 1 if report.drifted else 0
