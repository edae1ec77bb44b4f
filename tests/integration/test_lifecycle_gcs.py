"""The lifecycle on Cloud Storage (a real fake-gcs-server): training snapshots its data
to gs://, retrains from that snapshot, and the CLI moves the pointer by generation match."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from conftest import DATA, ridge_config

from estate.cli.main import main
from estate.contract.bundle import sha256_hex
from estate.storage.registry import list_versions, read_manifest, serving_pointer
from estate.storage.store import GCSStore


def test_train_promote_canary_rollback_on_gcs(
    gcs_server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}/estate"
    store = GCSStore(uri)
    config = str(ridge_config(tmp_path, 5.0))

    assert main(["train", "--config", config, "--output", uri, "--quiet"]) == 0
    (first,) = list_versions(store, "ames")
    manifest = read_manifest(store, "ames", first)
    digest = sha256_hex(DATA.read_bytes())
    assert manifest.lineage.snapshot_uri == f"{uri}/datasets/sha256/{digest}/ames.csv.gz"
    assert sha256_hex(store.read_bytes(f"datasets/sha256/{digest}/ames.csv.gz")) == digest

    retrain = ["train", "--config", config, "--output", uri, "--quiet", "--retrain-from", first]
    assert main(retrain) == 0
    (second,) = set(list_versions(store, "ames")) - {first}
    again = read_manifest(store, "ames", second)
    assert again.lineage.source_uri == manifest.lineage.snapshot_uri
    assert again.lineage.sha256 == digest
    assert again.promotion is not None
    assert again.promotion.decision == "promote"  # same data, same model: matches
    assert serving_pointer(store, "ames").champion == second

    assert main(["rollback", "--store", uri]) == 0
    assert main(["promote", second, "--canary", "25", "--store", uri]) == 0
    pointer = serving_pointer(store, "ames")
    assert pointer.champion == first
    assert pointer.canary is not None
    assert (pointer.canary.version, pointer.canary.percent) == (second, 25)
    capsys.readouterr()
    assert main(["models", "--json", "--store", uri]) == 0
    roles = {r["version"]: r["role"] for r in json.loads(capsys.readouterr().out)["versions"]}
    assert roles == {first: "champion", second: "canary 25%"}
    assert main(["promote", "--store", uri]) == 0
    assert serving_pointer(store, "ames").champion == second
    assert main(["rollback", "--store", uri]) == 0
    assert serving_pointer(store, "ames").champion == first
