"""Subcommands of the ``estate`` CLI, one module each (see training_jobs/cli.py)."""
