"""``estate train``: train candidates on a data set and export the best as a bundle."""

from __future__ import annotations

import argparse
from typing import Any

from estate.cli.commands._store_args import add_store_argument
from estate.contract.errors import ConfigError
from estate.storage.registry import read_manifest
from estate.storage.store import open_store
from estate.training.config import load_config
from estate.training.train import train


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train candidates, export the best as an ONNX bundle, promote it if it passes gates",
        description="Train candidate models on a tabular data set, pick the best by K-fold CV, "
        "and export it as an ONNX bundle to an artifact store.",
    )
    parser.add_argument(
        "--config",
        required=True,
        help="data-set config (TOML), e.g. configs/ames.toml",
    )
    parser.add_argument("--data", help="data URI (local path or gs://); default: the config's")
    add_store_argument(
        parser,
        old="--output",
        help="artifact store the bundle is written to: local folder or gs://bucket/prefix",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    parser.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="let the schema gate pass when features differ from the champion's",
    )
    parser.add_argument(
        "--retrain-from",
        metavar="VERSION",
        help="train on exactly the data snapshot of VERSION (in --store)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    data = args.data or config.data
    if args.retrain_from:
        if args.data:
            raise ConfigError("Use --data or --retrain-from, not both.")
        data = snapshot_of(args.store, config.name, args.retrain_from)
    manifest = train(
        config, data, args.store, quiet=args.quiet, allow_schema_change=args.allow_schema_change
    )
    best = next(c for c in manifest.candidates if c.name == manifest.chosen)
    print(
        f"{manifest.name} {manifest.version}: {manifest.chosen} "
        f"CV {manifest.selection_metric}={best.cv_metrics[manifest.selection_metric]:.4f}"
    )
    if manifest.promotion is not None:
        print(f"gates: {manifest.promotion.decision} ({manifest.promotion.reason})")
    return 0


def snapshot_of(store_uri: str, name: str, version: str) -> str:
    """The content-addressed data snapshot a version was trained on."""
    lineage = read_manifest(open_store(store_uri), name, version).lineage
    if lineage.snapshot_uri is None:
        raise ConfigError(
            f"{name}/{version} records no data snapshot (trained before snapshots existed); "
            f"its source was {lineage.source_uri} with sha256 {lineage.sha256}."
        )
    return lineage.snapshot_uri
