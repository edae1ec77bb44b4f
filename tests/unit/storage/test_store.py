"""Artifact store behaviour, identical for a local folder and Cloud Storage.

The Cloud Storage backend runs against a real fake-gcs-server process (no mocks): the
create-only guarantee rests on the server honouring ``ifGenerationMatch=0``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from estate.contract.errors import AlreadyExistsError, NotFoundError, StoreError
from estate.storage.store import ArtifactStore, GCSStore, LocalStore, open_store

StoreFactory = Callable[[], ArtifactStore]


@pytest.fixture
def store(store_factory: StoreFactory) -> ArtifactStore:
    return store_factory()


def test_write_then_read_round_trips(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 4  # binary, not text
    store.write_bytes("models/ames/v1/model.onnx", data)

    assert store.read_bytes("models/ames/v1/model.onnx") == data
    store.write_bytes("empty", b"")
    assert store.read_bytes("empty") == b""


def test_read_of_missing_key_raises_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError):
        store.read_bytes("models/ames/v1/model.onnx")
    store.write_bytes("models/ames/v1/manifest.json", b"{}")
    with pytest.raises(NotFoundError):
        store.read_bytes("models/ames/v1/model.onnx")


def test_create_only_write_of_existing_key_fails_and_keeps_original(
    store: ArtifactStore,
) -> None:
    store.write_bytes("models/ames/v1/model.onnx", b"original")

    with pytest.raises(AlreadyExistsError, match="immutable"):
        store.write_bytes("models/ames/v1/model.onnx", b"replacement")

    assert store.read_bytes("models/ames/v1/model.onnx") == b"original"


def test_overwrite_replaces_existing_and_creates_missing(store: ArtifactStore) -> None:
    store.write_bytes("models/ames/serving.json", b"first")
    store.write_bytes("models/ames/serving.json", b"second, longer", overwrite=True)
    store.write_bytes("models/ames/serving.json", b"3rd", overwrite=True)
    assert store.read_bytes("models/ames/serving.json") == b"3rd"

    store.write_bytes("models/new/serving.json", b"fresh", overwrite=True)
    assert store.read_bytes("models/new/serving.json") == b"fresh"


def test_list_is_sorted_relative_to_root_and_stops_at_the_prefix(store: ArtifactStore) -> None:
    keys = [
        "models/ames/v2/model.onnx",
        "models/ames2/v1/manifest.json",
        "models/ames/serving.json",
        "models/ames/v1/model.onnx",
        "other/x",
        "models/ames/v1/manifest.json",
        "models/ames/v2/manifest.json",
    ]
    for key in keys:
        store.write_bytes(key, key.encode())

    ames = [
        "models/ames/serving.json",
        "models/ames/v1/manifest.json",
        "models/ames/v1/model.onnx",
        "models/ames/v2/manifest.json",
        "models/ames/v2/model.onnx",
    ]
    assert store.list("models/ames") == ames
    assert store.list("models/ames/") == ames
    assert store.list("models/ames2") == ["models/ames2/v1/manifest.json"]
    assert store.list("models/ames/v1") == [
        "models/ames/v1/manifest.json",
        "models/ames/v1/model.onnx",
    ]
    assert store.list("models/am") == []  # a prefix is a folder, not a string prefix
    assert store.list("missing") == []
    assert store.list("") == sorted(keys)
    assert all(store.read_bytes(key) == key.encode() for key in store.list(""))


@pytest.mark.parametrize(
    "key", ["../x", "/abs", "a//b", "", "a/./b", "a/", "a/..", ".", "a/.hidden"]
)
def test_invalid_keys_raise_store_error(store: ArtifactStore, key: str) -> None:
    with pytest.raises(StoreError, match="Invalid store key"):
        store.write_bytes(key, b"data")
    with pytest.raises(StoreError, match="Invalid store key"):
        store.write_bytes(key, b"data", overwrite=True)
    with pytest.raises(StoreError, match="Invalid store key"):
        store.read_bytes(key)
    with pytest.raises(StoreError, match="Invalid store key"):
        store.exists(key)
    assert store.list("") == []


@pytest.mark.parametrize("prefix", ["..", "../x", "a/../.."])
def test_list_cannot_escape_the_root(store: ArtifactStore, prefix: str) -> None:
    with pytest.raises(StoreError, match="Invalid store key"):
        store.list(prefix)


def test_reading_a_folder_is_not_found(store: ArtifactStore) -> None:
    store.write_bytes("models/ames/v1/model.onnx", b"x")
    with pytest.raises(NotFoundError):
        store.read_bytes("models/ames")


def test_exists(store: ArtifactStore) -> None:
    assert not store.exists("models/ames/v1/model.onnx")
    store.write_bytes("models/ames/v1/model.onnx", b"x")

    assert store.exists("models/ames/v1/model.onnx")
    assert not store.exists("models/ames/v1")  # a folder is not a key
    assert not store.exists("models/ames/v1/manifest.json")
    assert not store.exists("models/ames/v1/model.onnx.tmp")


def _race(stores: list[ArtifactStore], key: str) -> list[object]:
    """Every store writes `key` create-only at the same moment; "won" or the exception."""
    barrier = threading.Barrier(len(stores))
    outcomes: list[object] = [None] * len(stores)

    def write(i: int) -> None:
        barrier.wait()
        try:
            stores[i].write_bytes(key, f"writer {i} ".encode() * (i + 1))
            outcomes[i] = "won"
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_racing_create_only_writes_have_exactly_one_winner(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(8)]  # one client per writer
    for round_ in range(6):
        key = f"models/race/v{round_}/model.onnx"
        outcomes = _race(stores, key)

        winners = [i for i, outcome in enumerate(outcomes) if outcome == "won"]
        assert len(winners) == 1, outcomes
        losers = [o for o in outcomes if o != "won"]
        assert all(isinstance(o, AlreadyExistsError) for o in losers), outcomes
        winner = winners[0]
        assert stores[0].read_bytes(key) == f"writer {winner} ".encode() * (winner + 1)
    assert len(stores[0].list("models/race")) == 6


def test_local_store_never_leaves_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = LocalStore(root)
    store.write_bytes("models/ames/v1/model.onnx", b"model")
    store.write_bytes("models/ames/serving.json", b"a")
    store.write_bytes("models/ames/serving.json", b"b", overwrite=True)
    with pytest.raises(AlreadyExistsError):
        store.write_bytes("models/ames/v1/model.onnx", b"other")

    expected = ["models/ames/serving.json", "models/ames/v1/model.onnx"]
    assert store.list("") == expected
    # list() hides dot-files, and temp files are dot-files: look at the disk itself.
    on_disk = sorted(
        (Path(folder) / name).relative_to(root).as_posix()
        for folder, _, names in os.walk(root)
        for name in names
    )
    assert on_disk == expected


def test_gcs_store_root_does_not_see_a_sibling_prefix(gcs_server: str) -> None:
    folder = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}"
    store = GCSStore(f"{folder}/some/prefix")
    sibling = GCSStore(f"{folder}/some/prefix2")
    store.write_bytes("models/a", b"mine")
    sibling.write_bytes("models/a", b"sibling's")
    sibling.write_bytes("models/b", b"sibling's")

    assert store.list("") == ["models/a"]
    assert store.list("models") == ["models/a"]
    assert store.read_bytes("models/a") == b"mine"
    assert not store.exists("models/b")
    with pytest.raises(NotFoundError):
        store.read_bytes("models/b")


def test_open_store_gs_uri_gives_gcs_store(gcs_server: str) -> None:
    store = open_store("gs://b/p")
    assert isinstance(store, GCSStore)
    assert store.uri == "gs://b/p"
    assert store.prefix == "p"

    # The default client works anonymously against the emulator.
    live = open_store(f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}/")
    assert isinstance(live, GCSStore)
    live.write_bytes("k", b"v")
    assert live.read_bytes("k") == b"v"


def test_open_store_file_uri_and_plain_path_give_local_store(tmp_path: Path) -> None:
    from_uri = open_store(f"file://{tmp_path}/a")
    assert isinstance(from_uri, LocalStore)
    assert from_uri.root == tmp_path.resolve() / "a"

    from_text = open_store(str(tmp_path / "b"))
    assert isinstance(from_text, LocalStore)
    assert from_text.root == tmp_path.resolve() / "b"

    from_path = open_store(tmp_path / "c")
    assert isinstance(from_path, LocalStore)
    from_path.write_bytes("k", b"v")
    assert (tmp_path / "c" / "k").read_bytes() == b"v"


@pytest.mark.parametrize("uri", ["s3://x", "s3://bucket/prefix", "https://example.com/x"])
def test_open_store_rejects_other_schemes(uri: str) -> None:
    with pytest.raises(StoreError, match="Unsupported store URI"):
        open_store(uri)


@pytest.mark.parametrize("uri", ["gs://", "gs:///prefix", "s3://bucket"])
def test_gcs_store_rejects_uri_without_bucket(uri: str) -> None:
    with pytest.raises(StoreError):
        GCSStore(uri)


class DropsResponses:
    """A requests session that sends every request, but loses the answer to the first
    `drop` uploads (what a connection reset after GCS committed the write looks like)."""

    def __init__(self, drop: int = 1, method: str | None = None) -> None:
        import requests

        self.session = requests.Session()
        self.to_drop = drop
        self.method = method  # drop only answers to this method (PUT: a resumable chunk)
        self.dropped = 0

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        import requests

        response = self.session.request(method, url, *args, **kwargs)  # type: ignore[arg-type]
        wanted = self.method is None or method == self.method
        if "/upload/" in url and wanted and self.dropped < self.to_drop:
            self.dropped += 1
            raise requests.exceptions.ConnectionError("connection reset after the upload")
        return response

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


def lossy_store(
    uri: str, drop: int = 1, method: str | None = None
) -> tuple[GCSStore, DropsResponses]:
    """A GCSStore on the real client, whose first `drop` upload answers are lost."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    http = DropsResponses(drop, method)
    client = storage.Client(project="test", credentials=AnonymousCredentials(), _http=http)
    return GCSStore(uri, client=client), http


def test_create_only_write_retried_after_a_lost_response_succeeds(gcs_server: str) -> None:
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}"
    store, http = lossy_store(uri)

    store.write_bytes("models/ames/v1/model.onnx", b"the model")

    assert http.dropped == 1  # the first try's answer was lost, so the retry saw a 412
    assert GCSStore(uri).read_bytes("models/ames/v1/model.onnx") == b"the model"


def test_retry_after_a_lost_response_still_refuses_another_writers_object(
    gcs_server: str,
) -> None:
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}"
    GCSStore(uri).write_bytes("models/ames/v1/model.onnx", b"someone else's model")
    store, http = lossy_store(uri, drop=1)

    # The first try's 412 is lost too, so the retry's 412 is checked against the bytes.
    with pytest.raises(AlreadyExistsError, match="immutable"):
        store.write_bytes("models/ames/v1/model.onnx", b"the model")
    assert http.dropped == 1
    # A 412 on the first try is a conflict even for identical bytes: versions are written once.
    with pytest.raises(AlreadyExistsError):
        store.write_bytes("models/ames/v1/model.onnx", b"someone else's model")
    assert store.read_bytes("models/ames/v1/model.onnx") == b"someone else's model"


def test_a_lost_response_on_a_large_resumable_upload_is_also_idempotent(gcs_server: str) -> None:
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}"
    # Above the client's 8 MiB multipart limit: a resumable upload, one PUT, whose answer
    # (the object is finalised) is lost; the retry starts a new session and gets a 412.
    store, http = lossy_store(uri, method="PUT")
    data = os.urandom(9 << 20)

    store.write_bytes("models/ames/v1/model.onnx", data)

    assert http.dropped == 1
    assert GCSStore(uri).read_bytes("models/ames/v1/model.onnx") == data
