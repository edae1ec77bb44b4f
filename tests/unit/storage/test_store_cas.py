"""Compare-and-swap writes (`read_versioned` / `write_if`) on a local folder and on a real
fake-gcs-server: the guarantee that two concurrent promotions cannot both win."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from estate.contract.errors import ConflictError
from estate.storage.store import ABSENT, ArtifactStore

StoreFactory = Callable[[], ArtifactStore]


def test_write_if_creates_then_swaps_only_from_the_read_generation(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    data, gen = store.read_versioned("models/m/serving.json")
    assert (data, gen) == (None, ABSENT)

    first = store.write_if("models/m/serving.json", b"one", ABSENT)
    assert store.read_versioned("models/m/serving.json") == (b"one", first)
    with pytest.raises(ConflictError, match="another writer"):
        store.write_if("models/m/serving.json", b"two", ABSENT)  # it exists now

    second = store.write_if("models/m/serving.json", b"two", first)
    assert second != first
    with pytest.raises(ConflictError, match="Re-read"):
        store.write_if("models/m/serving.json", b"stale", first)  # first is gone
    assert store.read_versioned("models/m/serving.json") == (b"two", second)


def test_racing_compare_and_swap_has_exactly_one_winner_per_round(
    store_factory: StoreFactory,
) -> None:
    """Every writer reads the same generation, then all write at once: one wins."""
    writers = [store_factory() for _ in range(6)]
    key = "models/m/serving.json"
    for round_ in range(5):
        _, gen = writers[0].read_versioned(key)
        outcomes = race(
            len(writers),
            lambda i, gen=gen, r=round_: writers[i].write_if(
                key, f"round {r} writer {i}".encode(), gen
            ),
        )

        winners = [i for i, o in enumerate(outcomes) if o == "won"]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ConflictError) for o in outcomes if o != "won"), outcomes
        data, _ = writers[1].read_versioned(key)
        assert data == f"round {round_} writer {winners[0]}".encode()


def race(n: int, act: Callable[[int], object]) -> list[object]:
    """Run act(0..n-1) in n threads released together; "won" or the exception of each."""
    barrier = threading.Barrier(n)
    outcomes: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            act(i)
            outcomes[i] = "won"
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return outcomes
