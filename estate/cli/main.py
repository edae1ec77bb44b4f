"""``estate``: one command for the model lifecycle (train, promote, score, monitor, ...).

Each subcommand lives in its own module under ``estate/cli/commands/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a ``run(args) -> int``.
Adding a command is one line in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from estate.contract import cells
from estate.contract.errors import EstateAdvisorError

COMMANDS = [
    "estate.cli.commands.train",
    "estate.cli.commands.openapi",
    "estate.cli.commands.submit",
    "estate.cli.commands.monitor",
    "estate.cli.commands.promote",
    "estate.cli.commands.rollback",
    "estate.cli.commands.models",
    "estate.cli.commands.score",
    "estate.cli.commands.beam_score",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="estate",
        description="estate-advisor model lifecycle: train candidate models, export ONNX "
        "bundles, promote and roll back the serving version, score files, watch drift.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ridge on unscaled one-hot columns is ill-conditioned by design (the penalty makes it
    # solvable); scipy's warning about it is noise for someone watching a run.
    warnings.filterwarnings("ignore", message=".*ill-conditioned matrix")
    try:
        code: int = args.func(args)
    except EstateAdvisorError as exc:  # the caller's data, config or arguments
        print(f"error: {cells.one_line(exc, None)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine: permissions, a full disk, a vanished folder
        print(f"error: {cells.one_line(exc, None)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outputs are written atomically: nothing half-written stays
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
