"""The one ``--store`` option: the artifact store every command reads or writes.

Commands used to call it ``--output`` (train, submit) or ``--artifacts`` (score, monitor).
Job specs already deployed still send those (Cloud Scheduler's job JSON, Vertex AI jobs
the retrain function submitted), so each command keeps its old name as a hidden alias of
``--store``; giving both is refused rather than guessed.
"""

from __future__ import annotations

import argparse

DEFAULT_STORE = "./artifacts"
STORE_HELP = "artifact store: local folder or gs://bucket/prefix"


def add_store_argument(
    parser: argparse.ArgumentParser,
    *,
    old: str | None = None,
    required: bool = False,
    help: str = STORE_HELP,
) -> None:
    """Add ``--store`` (``args.store``), accepting `old` as a hidden alias."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--store",
        metavar="URI",
        default=argparse.SUPPRESS if required else DEFAULT_STORE,
        help=help if required else f"{help} (default {DEFAULT_STORE})",
    )
    if old is not None:
        group.add_argument(old, dest="store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
