"""The serving pointer (``models/<name>/serving.json``) and how it moves: promote, canary,
rollback, each as one compare-and-swap.

Every change is a pure function from the current pointer (None if the model was never
promoted) to the next one. `update_pointer` reads the pointer with its generation,
applies the change, checks that every version the new pointer names is a complete,
verified bundle, and writes only if nobody wrote in between; after a lost race it
re-reads and re-applies, so a change is never based on a stale pointer.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import Field, ValidationError

from estate.contract.bundle import (
    FORMAT_VERSION,
    POINTER_FILE,
    ContractModel,
    check_format_version,
    pointer_key,
)
from estate.contract.errors import BundleError, ConflictError, PromotionError
from estate.storage.store import ArtifactStore

#: How many earlier champions the pointer remembers for rollback.
MAX_PREVIOUS = 20


class Canary(ContractModel):
    """A challenger that answers `percent` % of requests (by a stable hash of the request id)."""

    version: str
    percent: float = Field(gt=0.0, lt=100.0)


class ServingPointer(ContractModel):
    """Names the version of a model to serve. Written after the bundle is complete.

    Updated only by compare-and-swap (see `estate.storage.pointer`), so concurrent
    promotions cannot both win. ``previous`` holds earlier champions, most recent last,
    for ``estate rollback``.
    """

    format_version: int = FORMAT_VERSION
    champion: str
    updated_at: datetime
    canary: Canary | None = None
    previous: list[str] = Field([])  # copied per instance, like a factory's value
    note: str = Field("", description="Why the pointer last changed (promote, rollback, …).")


def parse_pointer(data: bytes) -> ServingPointer:
    """Parse the serving pointer file (unknown fields ignored, unknown versions refused:
    the rule in `estate.contract.bundle`)."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"{POINTER_FILE} is malformed: {exc}; promote a version again.") from exc
    if isinstance(raw, dict) and "format_version" in raw:
        check_format_version(raw["format_version"], POINTER_FILE)
    try:
        return ServingPointer.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{POINTER_FILE} is malformed: {exc}; promote a version again.") from exc


Change = Callable[[ServingPointer | None], ServingPointer]


def read_pointer(store: ArtifactStore, name: str) -> tuple[ServingPointer | None, str]:
    """The pointer (None if absent) and its generation token."""
    data, generation = store.read_versioned(pointer_key(name))
    return (None if data is None else parse_pointer(data)), generation


def served_versions(pointer: ServingPointer) -> list[str]:
    """Versions a pointer sends traffic to: the champion, then the canary if any."""
    return [pointer.champion] + ([pointer.canary.version] if pointer.canary else [])


def promoted(current: ServingPointer | None, version: str, note: str = "") -> ServingPointer:
    """`version` becomes champion; the old champion is remembered; any canary ends."""
    previous = list(current.previous) if current else []
    if current and current.champion != version:
        previous.append(current.champion)
    return ServingPointer(
        champion=version,
        updated_at=datetime.now(UTC),
        previous=previous[-MAX_PREVIOUS:],
        note=note or f"promoted {version}",
    )


def with_canary(current: ServingPointer | None, version: str, percent: float) -> ServingPointer:
    """Send `percent` % of traffic to `version`, keeping the champion."""
    if current is None:
        raise PromotionError(
            f"Cannot start a canary of {version}: the model has no champion yet. "
            "Promote a version fully first (estate promote VERSION)."
        )
    if version == current.champion:
        raise PromotionError(f"{version} is already the champion; a canary must be another one.")
    return current.model_copy(
        update={
            "canary": Canary(version=version, percent=percent),
            "updated_at": datetime.now(UTC),
            "note": f"canary {version} at {percent:g}%",
        }
    )


def canary_promoted(current: ServingPointer | None) -> ServingPointer:
    """The canary becomes champion (100 % of traffic)."""
    if current is None or current.canary is None:
        raise PromotionError(
            "There is no canary to promote. Name a version (estate promote VERSION), "
            "or start one with estate promote VERSION --canary PERCENT."
        )
    version = current.canary.version
    return promoted(current, version, note=f"canary {version} promoted to champion")


def rolled_back(current: ServingPointer | None) -> ServingPointer:
    """The previous champion serves again; the canary, if any, is stopped."""
    if current is None or not current.previous:
        raise PromotionError(
            "Nothing to roll back to: the pointer remembers no earlier champion. "
            "Promote a specific version instead (estate promote VERSION)."
        )
    back = current.previous[-1]
    return ServingPointer(
        champion=back,
        updated_at=datetime.now(UTC),
        previous=list(current.previous[:-1]),
        note=f"rolled back from {current.champion} to {back}",
    )


def canary_stopped(current: ServingPointer | None) -> ServingPointer:
    """Stop the canary: the champion answers everything again."""
    if current is None or current.canary is None:
        raise PromotionError("There is no canary to stop.")
    return current.model_copy(
        update={
            "canary": None,
            "updated_at": datetime.now(UTC),
            "note": f"canary {current.canary.version} stopped",
        }
    )


def update_pointer(
    store: ArtifactStore,
    name: str,
    change: Change,
    *,
    check: Callable[[str], object],
    attempts: int = 8,
) -> ServingPointer:
    """Apply `change` to the pointer of `name` by compare-and-swap; returns the new pointer.

    `check(version)` must raise if a version is not a complete, verified bundle (it is
    called for every version the new pointer serves, on every attempt).
    """
    for attempt in range(attempts):
        current, generation = read_pointer(store, name)
        pointer = change(current)
        for version in served_versions(pointer):
            check(version)
        data = pointer.model_dump_json(indent=2).encode()
        try:
            store.write_if(pointer_key(name), data, generation)
        except ConflictError:
            # A retried upload whose first try was committed reports a conflict with
            # itself; the pointer's timestamp makes our bytes unique, so check for them
            # rather than apply the change twice (a rollback would go back two steps).
            landed, _ = store.read_versioned(pointer_key(name))
            if landed == data:
                return pointer
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # let the winner finish
            continue
        return pointer
    raise ConflictError(
        f"The serving pointer of {name!r} kept changing during {attempts} attempts: other "
        "promotions are running. Check `estate models` and try again."
    )
