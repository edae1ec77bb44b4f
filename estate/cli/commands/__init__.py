"""Subcommands of the ``estate`` CLI, one module each (see estate/cli/main.py)."""
