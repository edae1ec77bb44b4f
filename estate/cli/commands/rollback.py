"""``estate rollback``: serve the previous champion again (and stop any canary)."""

from __future__ import annotations

import argparse
from typing import Any

from estate.cli.commands._pointer_args import add_model_arguments, describe
from estate.storage.pointer import canary_stopped, rolled_back, update_pointer
from estate.storage.registry import read_bundle
from estate.storage.store import open_store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "rollback",
        help="serve the previous champion again and stop any canary",
        description="Flip the serving pointer back to the previous champion (compare-and-swap; "
        "the bundle is verified first). Serving picks it up within "
        "ESTATE_POINTER_REFRESH_SECONDS.",
    )
    parser.add_argument(
        "--canary-only",
        action="store_true",
        help="only stop the canary; keep the champion",
    )
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    change = canary_stopped if args.canary_only else rolled_back
    pointer = update_pointer(
        store, args.model, change, check=lambda v: read_bundle(store, args.model, v)
    )
    print(f"{args.model}: {pointer.note}; {describe(pointer)}")
    return 0
