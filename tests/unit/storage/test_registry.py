"""Bundle registry: immutable versions, the serving pointer, and refusing bad bundles.

Runs on a local folder and on fake-gcs-server. The registry never parses ONNX, so the
"model" is a few arbitrary bytes whose size and sha256 the manifest records.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The fake-gcs-server fixture lives in test_store.py (tests/conftest.py belongs to the
# serving tests); importing it registers it for this module too.
from estate.contract.bundle import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    CandidateResult,
    CategoricalFeature,
    ConformalInterval,
    InputSchema,
    Lineage,
    Manifest,
    ModelFile,
    NumericFeature,
    OutputSpec,
    Parity,
    pointer_key,
    sha256_hex,
    version_prefix,
)
from estate.contract.errors import AlreadyExistsError, BundleError, NotFoundError
from estate.storage.registry import (
    list_versions,
    promote,
    read_bundle,
    serving_version,
    write_bundle,
)
from estate.storage.store import ArtifactStore, GCSStore, LocalStore

MODEL = b"not really onnx"


def make_manifest(model_bytes: bytes, name: str = "m", version: str = "v1") -> Manifest:
    """A complete, plausible manifest for `model_bytes` (every required field filled)."""
    return Manifest(
        format_version=FORMAT_VERSION,
        name=name,
        version=version,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        task="regression",
        input=InputSchema(
            numeric=[
                NumericFeature(
                    name="area",
                    integer=True,
                    impute=1442.0,
                    min=334.0,
                    max=3820.0,
                    mean=1493.8,
                    quantiles={"p01": 640.0, "p50": 1442.0, "p99": 2934.0},
                    missing_rate=0.0,
                    log1p=True,
                    description="Above-grade living area, square feet",
                )
            ],
            categorical=[
                CategoricalFeature(
                    name="Neighborhood",
                    categories=["NAmes", "CollgCr", "OldTown"],
                    frequencies={"NAmes": 0.5, "CollgCr": 0.3, "OldTown": 0.2},
                    impute="NAmes",
                    missing_rate=0.0,
                )
            ],
            dropped=["Order", "PID"],
        ),
        output=OutputSpec(
            name="price",
            target="price",
            description="Sale price",
            units="USD",
            target_transform="log",
        ),
        candidates=[
            CandidateResult(
                name="ridge",
                estimator="ridge",
                params={"alpha": 5.0},
                cv_metrics={"rmse_log": 0.15, "r2": 0.85},
                cv_fold_scores=[0.14, 0.15, 0.16],
                holdout_metrics={"rmse_log": 0.15, "r2": 0.86},
                fit_seconds=0.05,
            )
        ],
        chosen="ridge",
        chosen_params={"alpha": 5.0},
        selection_metric="rmse_log",
        interval=ConformalInterval(
            level=0.9,
            quantile=0.25,
            calibration_rows=2000,
            holdout_coverage=0.9,
            holdout_median_width=60000.0,
        ),
        training={"rows": 2500, "folds": 3, "seed": 0},
        lineage=Lineage(
            source_uri="data/ames.csv.gz",
            sha256="0" * 64,
            bytes=190000,
            rows=2930,
            rows_used=2925,
            columns=82,
            row_filter="area <= 4000",
        ),
        model_file=ModelFile(
            sha256=sha256_hex(model_bytes), bytes=len(model_bytes), opset={"": 17}
        ),
        parity=Parity(rows=500, max_abs_diff=1e-6, max_rel_diff=1e-9, tolerance_rel=1e-5),
        libraries={"scikit-learn": "1.5.0", "onnx": "1.16.0"},
        git_commit="4b18bc1",
        config={"name": name, "task": "regression"},
    )


@pytest.fixture(params=["local", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    bucket = request.getfixturevalue("gcs_server")
    return GCSStore(f"gs://{bucket}/{uuid.uuid4().hex[:12]}/estate")


def test_make_manifest_survives_a_json_round_trip() -> None:
    manifest = make_manifest(MODEL)
    assert Manifest.model_validate_json(manifest.to_json()) == manifest


def test_write_then_read_bundle_by_version_round_trips(store: ArtifactStore) -> None:
    manifest = make_manifest(MODEL)

    prefix = write_bundle(store, manifest, MODEL)

    assert prefix == "models/m/v1"
    assert store.list("models/m") == [f"{prefix}/{MANIFEST_FILE}", f"{prefix}/{MODEL_FILE}"]
    bundle = read_bundle(store, "m", "v1")
    assert bundle.manifest == manifest
    assert bundle.model_bytes == MODEL
    # Writing does not promote.
    with pytest.raises(NotFoundError):
        serving_version(store, "m")
    with pytest.raises(NotFoundError):
        read_bundle(store, "m")


def test_promote_writes_pointer_and_read_bundle_follows_it(store: ArtifactStore) -> None:
    other = b"another fake model"
    write_bundle(store, make_manifest(MODEL, version="v1"), MODEL)
    write_bundle(store, make_manifest(other, version="v2"), other)

    pointer = promote(store, "m", "v1")
    assert pointer.champion == "v1"
    assert pointer.updated_at.tzinfo is not None
    assert store.exists(pointer_key("m"))
    assert serving_version(store, "m") == "v1"
    assert read_bundle(store, "m").model_bytes == MODEL

    promote(store, "m", "v2")  # the pointer is the one mutable object
    assert serving_version(store, "m") == "v2"
    served = read_bundle(store, "m", version=None)
    assert served.manifest.version == "v2"
    assert served.model_bytes == other


def test_promote_of_missing_version_raises_and_writes_no_pointer(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError):
        promote(store, "m", "v1")
    assert not store.exists(pointer_key("m"))

    write_bundle(store, make_manifest(MODEL, version="v1"), MODEL)
    promote(store, "m", "v1")
    with pytest.raises(NotFoundError):
        promote(store, "m", "v2")
    assert serving_version(store, "m") == "v1"


def test_tampered_model_is_refused(store: ArtifactStore) -> None:
    write_bundle(store, make_manifest(MODEL), MODEL)
    promote(store, "m", "v1")
    tampered = MODEL.upper()
    assert len(tampered) == len(MODEL)
    assert tampered != MODEL
    store.write_bytes(f"models/m/v1/{MODEL_FILE}", tampered, overwrite=True)

    with pytest.raises(BundleError, match="sha256"):
        read_bundle(store, "m", "v1")
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(store, "m")
    with pytest.raises(BundleError, match="sha256"):
        promote(store, "m", "v1")


def test_truncated_model_is_refused(store: ArtifactStore) -> None:
    write_bundle(store, make_manifest(MODEL), MODEL)
    store.write_bytes(f"models/m/v1/{MODEL_FILE}", MODEL[:-4], overwrite=True)

    with pytest.raises(BundleError, match="truncated"):
        read_bundle(store, "m", "v1")
    with pytest.raises(BundleError, match="truncated"):
        promote(store, "m", "v1")
    assert not store.exists(pointer_key("m"))


def test_manifest_without_model_file_is_refused(store: ArtifactStore) -> None:
    store.write_bytes(f"models/m/v1/{MANIFEST_FILE}", make_manifest(MODEL).to_json())

    with pytest.raises(BundleError, match="incomplete"):
        read_bundle(store, "m", "v1")


def test_unsupported_format_version_is_refused(store: ArtifactStore) -> None:
    future = make_manifest(MODEL).model_copy(update={"format_version": 99})
    store.write_bytes(f"models/m/v1/{MODEL_FILE}", MODEL)
    store.write_bytes(f"models/m/v1/{MANIFEST_FILE}", future.to_json())

    with pytest.raises(BundleError, match="not supported") as excinfo:
        read_bundle(store, "m", "v1")
    assert "99" in str(excinfo.value)
    with pytest.raises(BundleError, match="not supported"):
        promote(store, "m", "v1")
    assert not store.exists(pointer_key("m"))


def test_manifest_copied_to_another_version_is_refused(store: ArtifactStore) -> None:
    write_bundle(store, make_manifest(MODEL, version="v1"), MODEL)
    store.write_bytes(f"models/m/v2/{MODEL_FILE}", MODEL)
    store.write_bytes(f"models/m/v2/{MANIFEST_FILE}", make_manifest(MODEL).to_json())

    with pytest.raises(BundleError, match="wrong place"):
        read_bundle(store, "m", "v2")


def test_malformed_pointer_is_a_bundle_error(store: ArtifactStore) -> None:
    write_bundle(store, make_manifest(MODEL), MODEL)
    store.write_bytes(pointer_key("m"), b'{"champ": "v1"}')

    with pytest.raises(BundleError, match="malformed"):
        read_bundle(store, "m")


def test_writing_the_same_version_twice_is_refused(store: ArtifactStore) -> None:
    write_bundle(store, make_manifest(MODEL), MODEL)
    other = b"a different model"

    with pytest.raises(AlreadyExistsError):
        write_bundle(store, make_manifest(other), other)
    with pytest.raises(AlreadyExistsError):
        write_bundle(store, make_manifest(MODEL), MODEL)

    bundle = read_bundle(store, "m", "v1")
    assert bundle.model_bytes == MODEL
    assert bundle.manifest == make_manifest(MODEL)


def test_write_bundle_refuses_bytes_that_do_not_match_the_manifest(
    store: ArtifactStore,
) -> None:
    with pytest.raises(BundleError, match="sha256"):
        write_bundle(store, make_manifest(MODEL), MODEL.upper())
    with pytest.raises(BundleError, match="truncated"):
        write_bundle(store, make_manifest(MODEL), MODEL[:-1])
    assert store.list("") == []


def test_list_versions_lists_only_versions_with_manifests(store: ArtifactStore) -> None:
    for version in ("v3", "v1", "v2"):
        write_bundle(store, make_manifest(MODEL, version=version), MODEL)
    promote(store, "m", "v2")
    store.write_bytes(f"{version_prefix('m', 'v4')}/{MODEL_FILE}", MODEL)  # no manifest
    store.write_bytes(f"{version_prefix('m', 'v1')}/extra/{MANIFEST_FILE}", b"{}")  # nested
    write_bundle(store, make_manifest(MODEL, name="m2", version="v9"), MODEL)  # sibling

    assert list_versions(store, "m") == ["v1", "v2", "v3"]
    assert list_versions(store, "m2") == ["v9"]
    assert list_versions(store, "unknown") == []


def test_bundle_write_survives_lost_responses_on_every_file(gcs_server: str) -> None:
    from test_store import lossy_store

    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:12]}"
    store, http = lossy_store(uri, drop=2)  # the model's answer and the manifest's
    manifest = make_manifest(MODEL)

    write_bundle(store, manifest, MODEL)

    assert http.dropped == 2
    bundle = read_bundle(GCSStore(uri), "m", "v1")
    assert bundle.model_bytes == MODEL
    assert bundle.manifest == manifest


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_manifest_that_cannot_be_read_back_is_never_written(
    store: ArtifactStore, value: float
) -> None:
    good = make_manifest(MODEL)
    feature = good.input.numeric[0].model_copy(update={"mean": value})
    bad = good.model_copy(update={"input": good.input.model_copy(update={"numeric": [feature]})})

    with pytest.raises(BundleError, match="nothing was written"):
        write_bundle(store, bad, MODEL)

    assert store.list("") == []
