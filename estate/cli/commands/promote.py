"""``estate promote``: make a version the champion, or start / finish a canary."""

from __future__ import annotations

import argparse
from typing import Any

from estate.cli.commands._pointer_args import add_model_arguments, describe
from estate.contract.errors import PromotionError
from estate.storage.pointer import canary_promoted, promoted, update_pointer, with_canary
from estate.storage.registry import read_bundle, read_manifest, serving_pointer
from estate.storage.store import open_store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "promote",
        help="make a version the champion, start a canary, or promote the running canary",
        description="Move the serving pointer by compare-and-swap. With VERSION: make it the "
        "champion (or, with --canary PERCENT, send it that share of traffic). Without "
        "VERSION: the running canary becomes champion. A version whose training gates failed "
        "is refused unless --force.",
    )
    parser.add_argument("version", nargs="?", help="version to promote (default: the canary)")
    parser.add_argument(
        "--canary",
        type=float,
        metavar="PERCENT",
        help="serve VERSION to this share of requests (0 < PERCENT < 100) next to the champion",
    )
    parser.add_argument(
        "--force", action="store_true", help="promote even if the version's gates failed"
    )
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    name = args.model
    if args.version is None:
        if args.canary is not None:
            raise PromotionError("--canary needs a VERSION: estate promote VERSION --canary 10")
        pointer = update_pointer(
            store, name, canary_promoted, check=lambda v: read_bundle(store, name, v)
        )
        print(f"{name}: {describe(pointer)}")
        return 0
    if args.canary is not None and not 0 < args.canary < 100:
        raise PromotionError(f"--canary must be between 0 and 100 (exclusive), not {args.canary}.")
    verdict = read_manifest(store, name, args.version).promotion
    if verdict is not None and verdict.decision != "promote":
        if not args.force:
            raise PromotionError(
                f"{args.version} did not pass its gates at training: {verdict.reason}. "
                "Pass --force to promote it anyway."
            )
        print(f"warning: promoting despite failed gates ({verdict.reason})")
    if verdict is not None and verdict.champion is not None:
        current = serving_pointer(store, name).champion
        if current != verdict.champion and current != args.version:
            print(
                f"note: {args.version}'s gates compared it with {verdict.champion}; "
                f"the champion is now {current}"
            )
    version, percent = args.version, args.canary
    if percent is None:
        pointer = update_pointer(
            store,
            name,
            lambda p: promoted(p, version, note=f"promoted {version} by hand"),
            check=lambda v: read_bundle(store, name, v),
        )
    else:
        pointer = update_pointer(
            store,
            name,
            lambda p: with_canary(p, version, percent),
            check=lambda v: read_bundle(store, name, v),
        )
    print(f"{name}: {describe(pointer)}")
    return 0
