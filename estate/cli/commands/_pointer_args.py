"""Arguments and output shared by the commands that read or move the serving pointer."""

from __future__ import annotations

import argparse

from estate.cli.commands._store_args import add_store_argument
from estate.storage.pointer import ServingPointer


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="ames", help="model name in the store (default ames)")
    add_store_argument(parser)


def describe(pointer: ServingPointer) -> str:
    """One line: who serves, the canary, the rollback target."""
    text = f"champion {pointer.champion}"
    if pointer.canary:
        text += f", canary {pointer.canary.version} at {pointer.canary.percent:g}%"
    if pointer.previous:
        text += f", rollback target {pointer.previous[-1]}"
    return text
