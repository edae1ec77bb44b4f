"""The serving pointer's life: promote, canary, rollback, and concurrent promotions.

Runs on a local folder and on a real fake-gcs-server; bundles are a few fake bytes with
a correct manifest (the registry never parses ONNX).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_registry import MODEL, make_manifest
from test_store_cas import race

from estate.contract.bundle import MODEL_FILE, pointer_key
from estate.contract.errors import BundleError, ConflictError, NotFoundError, PromotionError
from estate.storage.pointer import (
    MAX_PREVIOUS,
    ServingPointer,
    canary_promoted,
    canary_stopped,
    parse_pointer,
    promoted,
    read_pointer,
    rolled_back,
    update_pointer,
    with_canary,
)
from estate.storage.registry import promote, read_bundle, serving_pointer, write_bundle
from estate.storage.store import ArtifactStore, LocalStore

StoreFactory = Callable[[], ArtifactStore]


def bundles(store: ArtifactStore, *versions: str) -> None:
    for version in versions:
        write_bundle(store, make_manifest(MODEL, version=version), MODEL)


def change(store: ArtifactStore, fn: Callable[[ServingPointer | None], ServingPointer]) -> None:
    update_pointer(store, "m", fn, check=lambda v: read_bundle(store, "m", v))


def test_promote_remembers_champions_and_rollback_walks_back(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    bundles(store, "v1", "v2", "v3")
    for version in ("v1", "v2", "v3"):
        promote(store, "m", version)
    pointer = serving_pointer(store, "m")
    assert (pointer.champion, pointer.previous) == ("v3", ["v1", "v2"])

    change(store, rolled_back)
    pointer = serving_pointer(store, "m")
    assert (pointer.champion, pointer.previous) == ("v2", ["v1"])
    assert "rolled back from v3 to v2" in pointer.note
    change(store, rolled_back)
    assert serving_pointer(store, "m").champion == "v1"
    with pytest.raises(PromotionError, match="Nothing to roll back to"):
        change(store, rolled_back)
    assert serving_pointer(store, "m").champion == "v1"


def test_canary_then_full_promotion_or_rollback(store_factory: StoreFactory) -> None:
    store = store_factory()
    bundles(store, "v1", "v2")
    with pytest.raises(PromotionError, match="no champion yet"):
        change(store, lambda p: with_canary(p, "v2", 10))
    promote(store, "m", "v1")
    with pytest.raises(PromotionError, match="already the champion"):
        change(store, lambda p: with_canary(p, "v1", 10))

    change(store, lambda p: with_canary(p, "v2", 10))
    pointer = serving_pointer(store, "m")
    assert pointer.champion == "v1"
    assert pointer.canary is not None
    assert (pointer.canary.version, pointer.canary.percent) == ("v2", 10)

    change(store, canary_promoted)
    pointer = serving_pointer(store, "m")
    assert (pointer.champion, pointer.canary, pointer.previous) == ("v2", None, ["v1"])
    with pytest.raises(PromotionError, match="no canary"):
        change(store, canary_promoted)

    change(store, rolled_back)  # v1 again; start a canary and roll back: canary ends too
    change(store, lambda p: with_canary(p, "v2", 25))
    promote(store, "m", "v2")
    change(store, rolled_back)
    pointer = serving_pointer(store, "m")
    assert (pointer.champion, pointer.canary) == ("v1", None)
    change(store, lambda p: with_canary(p, "v2", 5))
    change(store, canary_stopped)
    assert serving_pointer(store, "m").canary is None


def test_pointer_never_names_a_broken_or_missing_bundle(store_factory: StoreFactory) -> None:
    store = store_factory()
    bundles(store, "v1", "v2")
    promote(store, "m", "v1")
    store.write_bytes(f"models/m/v2/{MODEL_FILE}", MODEL.upper(), overwrite=True)
    before = store.read_bytes(pointer_key("m"))

    with pytest.raises(BundleError, match="sha256"):
        change(store, lambda p: with_canary(p, "v2", 10))
    with pytest.raises(NotFoundError):
        change(store, lambda p: with_canary(p, "v9", 10))
    with pytest.raises(NotFoundError):  # a file, not a version folder
        change(store, lambda p: with_canary(p, "serving.json", 10))
    with pytest.raises(BundleError, match="sha256"):
        promote(store, "m", "v2")
    assert store.read_bytes(pointer_key("m")) == before


def test_history_is_bounded() -> None:
    pointer = None
    for i in range(MAX_PREVIOUS + 5):
        pointer = promoted(pointer, f"v{i}")
    assert pointer is not None
    assert len(pointer.previous) == MAX_PREVIOUS
    assert pointer.previous[-1] == f"v{MAX_PREVIOUS + 3}"


def _run(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()


def test_concurrent_promotions_have_exactly_one_winner_per_round(
    store_factory: StoreFactory,
) -> None:
    """Every promoter reads the same pointer, then all write: one wins, the rest conflict."""
    writers = [store_factory() for _ in range(5)]
    bundles(writers[0], *(f"r{r}w{i}" for r in range(4) for i in range(len(writers))))
    promote(writers[0], "m", "r0w0")
    for round_ in range(4):
        barrier = threading.Barrier(len(writers))

        def attempt(i: int, r: int = round_, barrier: threading.Barrier = barrier) -> None:
            def change_after_everyone_read(current: ServingPointer | None) -> ServingPointer:
                barrier.wait()  # all have read the same generation before anyone writes
                return promoted(current, f"r{r}w{i}")

            update_pointer(
                writers[i],
                "m",
                change_after_everyone_read,
                check=lambda v: read_bundle(writers[i], "m", v),
                attempts=1,
            )

        outcomes = race(len(writers), attempt)
        winners = [i for i, o in enumerate(outcomes) if o == "won"]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ConflictError) for o in outcomes if o != "won"), outcomes
        assert serving_pointer(writers[1], "m").champion == f"r{round_}w{winners[0]}"


def test_concurrent_promotions_with_retries_lose_no_update_and_never_tear(
    store_factory: StoreFactory,
) -> None:
    """Promoters that retry all succeed one after another: every promotion is in the
    history exactly once (a plain overwrite would lose some), and a reader polling
    throughout only ever sees a complete pointer naming a complete bundle."""
    writers = [store_factory() for _ in range(6)]
    versions = [f"v{i}" for i in range(len(writers))]
    bundles(writers[0], "v0", *versions[1:], "base")
    promote(writers[0], "m", "base")
    done = threading.Event()
    seen: list[str] = []
    problems: list[BaseException] = []

    def read_constantly() -> None:
        reader = store_factory()
        while not done.is_set():
            try:
                data, _ = reader.read_versioned(pointer_key("m"))
                assert data is not None
                pointer = parse_pointer(data)
                read_bundle(reader, "m", pointer.champion)
                seen.append(pointer.champion)
            except BaseException as exc:
                problems.append(exc)
                return

    barrier = threading.Barrier(len(writers))

    def promote_one(i: int) -> None:
        barrier.wait()
        promote(writers[i], "m", versions[i])

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        _run([threading.Thread(target=promote_one, args=(i,)) for i in range(len(writers))])
    finally:
        done.set()
        reader.join(timeout=30)
    assert problems == []
    assert seen
    final, _ = read_pointer(writers[0], "m")
    assert final is not None
    history = [*final.previous, final.champion]
    assert history[0] == "base"
    assert sorted(history[1:]) == sorted(versions)


class CommitThenConflict(LocalStore):
    """A store whose next compare-and-swap write lands but reports a conflict, as a
    client-side retry of an upload the server had already committed would."""

    fail_next = False

    def write_if(self, key: str, data: bytes, generation: str) -> str:
        written = super().write_if(key, data, generation)
        if self.fail_next:
            self.fail_next = False
            raise ConflictError("precondition failed on the retried upload")
        return written


def test_a_write_that_landed_but_reported_a_conflict_is_not_applied_twice(
    tmp_path: Path,
) -> None:
    store = CommitThenConflict(tmp_path / "artifacts")
    bundles(store, "v1", "v2", "v3")
    for version in ("v1", "v2", "v3"):
        promote(store, "m", version)

    store.fail_next = True
    change(store, rolled_back)

    pointer = serving_pointer(store, "m")
    assert (pointer.champion, pointer.previous) == ("v2", ["v1"])  # one step, not two
