"""Serving follows the pointer: canary split, pinning, version headers, live switches,
and refusing a bad new bundle while the old one keeps serving.

Bundles are copies of the session's tiny Ames model under new version names (same ONNX
bytes, new manifest), so no extra training is needed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from http_server import serve

from estate.contract.bundle import MODEL_FILE, Manifest, sha256_hex
from estate.storage.pointer import update_pointer, with_canary
from estate.storage.registry import promote, read_bundle, write_bundle
from estate.storage.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())


def client() -> FlaskClient:
    from functions_framework import create_app

    return create_app(target="predict", source=str(REPO / "main.py")).test_client()


@pytest.fixture
def store(ames_store: Path, tmp_path: Path) -> LocalStore:
    """A private copy of the session store: champion = the tiny model."""
    shutil.copytree(ames_store, tmp_path / "store")
    return LocalStore(tmp_path / "store")


def copy_version(store: LocalStore, manifest: Manifest, version: str) -> str:
    """The same model under a new version name (a complete, valid bundle)."""
    bundle = read_bundle(store, manifest.name, manifest.version)
    write_bundle(
        store,
        manifest.model_copy(update={"version": version}),
        bundle.model_bytes,
        bundle.explainer_bytes,
        bundle.card_bytes,
        bundle.comparables_bytes,
    )
    return version


def canary(store: LocalStore, version: str, percent: float) -> None:
    update_pointer(
        store,
        "ames",
        lambda p: with_canary(p, version, percent),
        check=lambda v: read_bundle(store, "ames", v),
    )


def serve_from(env: pytest.MonkeyPatch, store: LocalStore, refresh: float = 0) -> FlaskClient:
    env.setenv("ESTATE_ARTIFACTS", str(store.root))
    env.setenv("ESTATE_POINTER_REFRESH_SECONDS", str(refresh))
    return client()


def answer_version(api: FlaskClient, **headers: str) -> str:
    answer = api.post("/", json=HOUSE, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    version: str = answer.get_json()["model"]["version"]
    assert answer.headers["X-Model-Version"] == version  # every response names it
    return version


def test_ten_percent_canary_answers_about_ten_percent_of_2000_requests(
    serving_env: pytest.MonkeyPatch, store: LocalStore, ames_manifest: Manifest
) -> None:
    champion = ames_manifest.version
    challenger = copy_version(store, ames_manifest, "v-canary")
    canary(store, challenger, 10)
    api = serve_from(serving_env, store, refresh=3600)

    counts = Counter(answer_version(api, **{"X-Request-Id": f"req-{i}"}) for i in range(2000))
    assert set(counts) == {champion, challenger}
    assert 150 <= counts[challenger] <= 250, counts  # 200 expected; sd about 13
    # Stable: the same id always gets the same version; no id → random but still split.
    ids = [f"req-{i}" for i in range(40)]
    first = [answer_version(api, **{"X-Request-Id": i}) for i in ids]
    assert first == [answer_version(api, **{"X-Request-Id": i}) for i in ids]


def test_pinning_a_served_version_and_refusing_an_unknown_one(
    serving_env: pytest.MonkeyPatch, store: LocalStore, ames_manifest: Manifest
) -> None:
    challenger = copy_version(store, ames_manifest, "v-canary")
    canary(store, challenger, 1)
    api = serve_from(serving_env, store)

    assert {answer_version(api, **{"X-Model-Version": challenger}) for _ in range(5)} == {
        challenger
    }
    pinned = ames_manifest.version
    assert answer_version(api, **{"X-Model-Version": pinned}) == pinned
    answer = api.post("/", json=HOUSE, headers={"X-Model-Version": "v-nope"})
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.get_json()
    assert "v-nope" in problem["detail"]
    assert challenger in problem["detail"]
    got = api.get("/", headers={"X-Model-Version": challenger})
    assert got.get_json()["model"]["version"] == challenger
    assert got.headers["X-Model-Version"] == challenger


def test_pointer_changes_are_picked_up_without_restart_at_the_refresh_interval(
    serving_env: pytest.MonkeyPatch, store: LocalStore, ames_manifest: Manifest
) -> None:
    api = serve_from(serving_env, store, refresh=0)
    assert answer_version(api) == ames_manifest.version
    promote(store, "ames", copy_version(store, ames_manifest, "v-next"))
    assert answer_version(api) == "v-next"

    # A holder that re-reads the pointer only hourly keeps answering with what it loaded.
    import estate.serving.versions as model_module

    model_module._holder = None
    api = serve_from(serving_env, store, refresh=3600)
    assert answer_version(api) == "v-next"
    promote(store, "ames", ames_manifest.version)
    assert answer_version(api) == "v-next"


def test_a_corrupted_new_bundle_is_refused_while_the_old_one_keeps_serving(
    serving_env: pytest.MonkeyPatch,
    store: LocalStore,
    ames_manifest: Manifest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = serve_from(serving_env, store, refresh=0)
    old = ames_manifest.version
    assert answer_version(api) == old

    # 1. Promoted while valid, then corrupted on storage: the checksum refuses it.
    promote(store, "ames", copy_version(store, ames_manifest, "v-rotten"))
    path = store.root / "models/ames/v-rotten" / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="estate_advisor.functions"):
        assert [answer_version(api) for _ in range(3)] == [old] * 3
    assert "refused new champion ames/v-rotten" in caplog.text
    assert "sha256" in caplog.text

    # 2. Checksum right but not a runnable graph: onnxruntime refuses it before the switch.
    garbage = b"definitely not an onnx graph"
    bad = ames_manifest.model_copy(
        update={
            "version": "v-garbage",
            "model_file": ames_manifest.model_file.model_copy(
                update={"sha256": sha256_hex(garbage), "bytes": len(garbage)}
            ),
        }
    )
    write_bundle(
        store,
        bad.model_copy(update={"explainer": None, "model_card": None, "comparables": None}),
        garbage,
    )
    promote(store, "ames", "v-garbage")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="estate_advisor.functions"):
        assert answer_version(api) == old
    assert "v-garbage does not run" in caplog.text

    # 3. A bad canary is dropped; the champion answers everything. Then a good one switches.
    promote(store, "ames", old)
    canary(store, "v-garbage", 50)
    assert {answer_version(api, **{"X-Request-Id": str(i)}) for i in range(30)} == {old}
    promote(store, "ames", copy_version(store, ames_manifest, "v-good"))
    assert answer_version(api) == "v-good"


def test_canary_over_real_http_names_the_answering_version(
    monkeypatch: pytest.MonkeyPatch, store: LocalStore, ames_manifest: Manifest
) -> None:
    challenger = copy_version(store, ames_manifest, "v-canary")
    canary(store, challenger, 10)
    monkeypatch.setenv("ESTATE_POINTER_REFRESH_SECONDS", "0")
    with serve(store.root, "ames") as url, requests.Session() as http:
        seen: Counter[str] = Counter()
        for i in range(300):
            answer = http.post(url, json=HOUSE, headers={"X-Request-Id": f"http-{i}"}, timeout=10)
            assert answer.status_code == 200
            assert answer.headers["X-Model-Version"] == answer.json()["model"]["version"]
            seen[answer.headers["X-Model-Version"]] += 1
        assert set(seen) == {ames_manifest.version, challenger}
        assert 10 <= seen[challenger] <= 55, seen  # 30 expected
        pinned = http.post(url, json=HOUSE, headers={"X-Model-Version": challenger}, timeout=10)
        assert pinned.headers["X-Model-Version"] == challenger

        promote(LocalStore(store.root), "ames", challenger)  # live switch over HTTP
        assert http.post(url, json=HOUSE, timeout=10).headers["X-Model-Version"] == challenger


def test_requests_during_pointer_flips_always_get_a_whole_model(
    serving_env: pytest.MonkeyPatch, store: LocalStore, ames_manifest: Manifest
) -> None:
    """Threads route and predict while another thread flips champion and canary."""
    import threading

    from estate.serving.settings import ModelSettings
    from estate.serving.versions import ModelHolder

    other = copy_version(store, ames_manifest, "v-other")
    versions = {ames_manifest.version, other}
    holder = ModelHolder(ModelSettings(artifacts=str(store.root), pointer_refresh_seconds=0))
    holder.get()
    done = threading.Event()
    problems: list[BaseException] = []
    answered: Counter[str] = Counter()

    def requests_loop(worker: int) -> None:
        i = 0
        while not done.is_set():
            try:
                model = holder.route(f"w{worker}-{i}")
                (prediction,) = model.predict(HOUSE["instances"])
                assert model.manifest.version in versions
                assert 50_000 < prediction.value < 1_000_000
                answered[model.manifest.version] += 1
            except BaseException as exc:
                problems.append(exc)
                return
            i += 1

    workers = [threading.Thread(target=requests_loop, args=(w,)) for w in range(4)]
    for thread in workers:
        thread.start()
    try:
        for flip in range(12):
            if flip % 3 == 2:
                canary(store, other if flip % 2 else ames_manifest.version, 50)
            else:
                promote(store, "ames", other if flip % 2 else ames_manifest.version)
    finally:
        done.set()
        for thread in workers:
            thread.join(timeout=30)
    assert problems == []
    assert set(answered) == versions
