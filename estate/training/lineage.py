"""Data lineage: every training run's exact input bytes, kept write-once by content.

The snapshot lives at ``datasets/sha256/<hex>/<file name>`` in the artifact store (the
file name keeps its suffix, which says how to parse it). Identical data is stored once;
``manifest.lineage.snapshot_uri`` points at it, so any model can be retrained from
exactly its data (``estate train --retrain-from VERSION``).
"""

from __future__ import annotations

import contextlib
import re

from estate.contract.bundle import sha256_hex
from estate.contract.errors import AlreadyExistsError, ConfigError
from estate.storage.store import ArtifactStore
from estate.training.data import Table


def snapshot_key(sha256: str, source_uri: str) -> str:
    """Content-addressed key of a data file: the hash, then a safe form of its name."""
    name = source_uri.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "data"
    return f"datasets/sha256/{sha256}/{name}"


def snapshot(store: ArtifactStore, table: Table) -> str:
    """Copy the table's bytes to their content-addressed key (once); returns its URI."""
    if sha256_hex(table.raw) != table.sha256:
        raise ConfigError(
            f"The bytes read from {table.uri} do not match their recorded sha256; "
            "the snapshot would not be exact. Read the table with load_table()."
        )
    key = snapshot_key(table.sha256, table.uri)
    if not store.exists(key):
        with contextlib.suppress(AlreadyExistsError):  # a concurrent run stored the same bytes
            store.write_bytes(key, table.raw)  # create-only: write-once
    return f"{store.uri}/{key}"
