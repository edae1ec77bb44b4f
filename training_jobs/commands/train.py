"""``estate train``: train candidates on a data set and export the best as a bundle."""

from __future__ import annotations

import argparse
from typing import Any

from training_jobs.config import load_config
from training_jobs.train import add_train_arguments, train


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train candidates, export the best as an ONNX bundle, promote it if it passes gates",
        description="Train candidate models on a tabular data set, pick the best by K-fold CV, "
        "and export it as an ONNX bundle to an artifact store.",
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    manifest = train(config, args.data or config.data, args.output, quiet=args.quiet)
    best = next(c for c in manifest.candidates if c.name == manifest.chosen)
    print(
        f"{manifest.name} {manifest.version}: {manifest.chosen} "
        f"CV {manifest.selection_metric}={best.cv_metrics[manifest.selection_metric]:.4f}"
    )
    return 0
