"""The bundle format's compatibility rule (estate/contract/bundle.py): a bundle written by
the format-1 code still loads and serves; unknown fields are ignored; newer versions are
refused with a message that says what to deploy."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import function_client as client

from estate.contract.bundle import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    ModelFile,
    parse_manifest,
    pointer_key,
    sha256_hex,
    version_prefix,
)
from estate.contract.errors import BundleError
from estate.storage.pointer import parse_pointer
from estate.storage.registry import read_bundle, serving_pointer
from estate.storage.store import LocalStore

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests" / "support" / "bundles" / "v1"
HOUSE = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]


def golden_version() -> str:
    pointer = json.loads((GOLDEN / pointer_key("ames")).read_text())
    champion: str = pointer["champion"]
    return champion


def golden_manifest() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(
        (GOLDEN / version_prefix("ames", golden_version()) / MANIFEST_FILE).read_text()
    )
    return raw


def test_the_golden_bundle_is_small_and_format_1() -> None:
    files = [p for p in GOLDEN.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300_000
    assert golden_manifest()["format_version"] == 1


def test_a_v1_bundle_loads_with_its_checksums_verified() -> None:
    store = LocalStore(GOLDEN)
    bundle = read_bundle(store, "ames")  # follows the pointer, verifies size + sha256
    assert bundle.manifest.version == golden_version() == serving_pointer(store, "ames").champion
    model = (GOLDEN / version_prefix("ames", golden_version()) / MODEL_FILE).read_bytes()
    assert bundle.model_bytes == model
    assert bundle.manifest.model_file.sha256 == sha256_hex(model)
    assert bundle.explainer_bytes is not None
    assert bundle.manifest.interval is not None
    assert bundle.manifest.drift is not None


def test_todays_models_keep_every_v1_field() -> None:
    """Readers ignore unknown fields, so a field renamed or removed under version 1 would
    vanish silently: reading and re-writing the v1 files must give them back unchanged."""
    manifest = parse_manifest(json.dumps(golden_manifest()).encode())
    assert without_new_nulls(json.loads(manifest.to_json()), golden_manifest()) == golden_manifest()
    raw = json.loads((GOLDEN / pointer_key("ames")).read_text())
    assert json.loads(parse_pointer(json.dumps(raw).encode()).model_dump_json()) == raw


def without_new_nulls(today: Any, old: Any) -> Any:
    """`today` without the optional fields added since `old` was written that hold null:
    by rule 1 a new field's absence means the old behaviour, so null is how a re-written
    v1 file says "absent"; any other difference remains and fails the comparison."""
    if isinstance(today, dict) and isinstance(old, dict):
        return {
            k: without_new_nulls(v, old.get(k))
            for k, v in today.items()
            if k in old or v is not None
        }
    if isinstance(today, list) and isinstance(old, list) and len(today) == len(old):
        return [without_new_nulls(a, b) for a, b in zip(today, old, strict=True)]
    return today


@pytest.fixture
def golden_store(serving_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    serving_env.setenv("ESTATE_ARTIFACTS", str(GOLDEN))
    serving_env.setenv("ESTATE_MODEL_NAME", "ames")
    return serving_env


def test_a_v1_bundle_serves_predictions_and_explanations(golden_store: pytest.MonkeyPatch) -> None:
    answer = client("predict").post("/", json={"instances": [HOUSE]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["model"] == {"name": "ames", "version": golden_version()}
    (pred,) = body["predictions"]
    assert pred["interval"]["lower"] < pred["price"] < pred["interval"]["upper"]
    assert 150_000 < pred["price"] < 300_000  # this house sold for $215,000
    # No `interval.adaptive` and no scale output: the fixed band, raw ± quantile, as in v1.
    quantile = golden_manifest()["interval"]["quantile"]
    assert "adaptive" not in golden_manifest()["interval"]
    width = math.log(pred["interval"]["upper"]) - math.log(pred["interval"]["lower"])
    assert width == pytest.approx(2 * quantile, rel=1e-12)
    explained = client("explain").post("/", json={"instances": [HOUSE]})
    assert explained.status_code == 200, explained.get_data(as_text=True)
    (row,) = explained.get_json()["explanations"]
    assert row["price"] == pytest.approx(pred["price"])


def test_a_v1_bundle_runs_without_a_scale_and_gives_every_row_the_same_band() -> None:
    from estate.runtime.outputs import intervals
    from estate.runtime.serving_model import ServingModel

    bundle = read_bundle(LocalStore(GOLDEN), "ames")
    model = ServingModel(bundle.manifest, bundle.model_bytes)
    rows = [HOUSE, {**HOUSE, "area": 3500.0, "Overall.Qual": 10}, {"area": 600.0}]
    numeric, categorical, _ = model.pack(model.adapter.validate_python(rows))
    _, raw, scale = model.run(numeric, categorical)
    assert scale is None
    bounds = intervals(raw, bundle.manifest, scale)
    assert bounds is not None
    widths = np.log(bounds[:, 1]) - np.log(bounds[:, 0])
    np.testing.assert_allclose(widths, 2 * golden_manifest()["interval"]["quantile"], rtol=1e-12)
    assert model.interval(float(raw[0]), None) == tuple(bounds[0].tolist())


def with_future_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` plus optional fields a later writer might add, at the top and nested."""
    raw = json.loads(json.dumps(raw))
    raw["future_field"] = {"anything": [1, 2, 3]}
    raw["input"]["numeric"][0]["future_unit"] = "m²"
    raw["input"]["categorical"][0]["future_aliases"] = {"60": ["sixty"]}
    raw["input"]["future_order"] = ["area"]
    raw["output"]["future_transform_hint"] = None
    raw["interval"]["future_method_detail"] = "split"
    raw["drift"]["numeric"]["area"]["future_bins"] = 7
    raw["model_file"]["future_compression"] = "none"
    raw["lineage"]["future_partition"] = "2026-11"
    raw["promotion"]["gates"][0]["future_weight"] = 1.0
    raw["explainer"]["future_kernel"] = "tree"
    return raw


def test_unknown_top_level_and_nested_fields_are_ignored() -> None:
    raw = golden_manifest()
    today = parse_manifest(json.dumps(raw).encode())
    later = parse_manifest(json.dumps(with_future_fields(raw)).encode())
    assert later == today
    assert "future_field" not in later.model_dump()


def test_a_bundle_with_unknown_fields_still_serves(
    golden_store: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The case the rule is for: a newer training run's bundle, an older deployment."""
    store = tmp_path / "store"
    shutil.copytree(GOLDEN, store)
    manifest = store / version_prefix("ames", golden_version()) / MANIFEST_FILE
    manifest.write_text(json.dumps(with_future_fields(golden_manifest())))
    pointer = store / pointer_key("ames")
    raw = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**raw, "future_routing": {"sticky": True}}))
    golden_store.setenv("ESTATE_ARTIFACTS", str(store))
    answer = client("predict").post("/", json={"instances": [HOUSE]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["model"]["version"] == golden_version()


def test_unknown_pointer_fields_are_ignored() -> None:
    raw = json.loads((GOLDEN / pointer_key("ames")).read_text())
    today = parse_pointer(json.dumps(raw).encode())
    raw["future_routing"] = {"sticky": True}
    raw["canary"] = {"version": "v2", "percent": 10, "future_ramp": [10, 50]}
    later = parse_pointer(json.dumps(raw).encode())
    assert later.champion == today.champion
    assert later.canary is not None
    assert later.canary.percent == 10
    assert "future_ramp" not in later.model_dump_json()


@pytest.mark.parametrize("found", [FORMAT_VERSION + 1, 99])
def test_a_newer_format_version_is_refused_saying_what_to_deploy(found: int) -> None:
    raw = {**golden_manifest(), "format_version": found}
    with pytest.raises(BundleError) as excinfo:
        parse_manifest(json.dumps(raw).encode())
    message = str(excinfo.value)
    assert f"format version {found} is not supported" in message
    assert "written by a newer estate-advisor" in message
    assert "reads version 1" in message
    assert "Deploy the release that wrote it" in message
    pointer = {**json.loads((GOLDEN / pointer_key("ames")).read_text()), "format_version": found}
    with pytest.raises(BundleError, match=f"serving.json: format version {found} is not"):
        parse_pointer(json.dumps(pointer).encode())


@pytest.mark.parametrize("found", [0, "1", True, None, 1.5])
def test_an_unknown_or_mistyped_format_version_is_refused(found: object) -> None:
    raw = {**golden_manifest(), "format_version": found}
    with pytest.raises(BundleError, match=f"format version {found!r} is not supported"):
        parse_manifest(json.dumps(raw).encode())


def test_the_model_file_entry_is_named_model_file() -> None:
    """estate/contract/manifest.py writes the name out (bundle.py, which defines
    `MODEL_FILE`, imports it): the two must agree."""
    assert ModelFile(sha256="0" * 64, bytes=1, opset={}).name == MODEL_FILE


WRITER_TYPO = """
from estate.contract.bundle import ModelFile

ModelFile(sha256="0" * 64, bytes=10, opset={"ai.onnx": 17}, shaa256="typo")
ModelFile(sha256="0" * 64, bytes="10", opset={"ai.onnx": 17})
"""


def test_writers_cannot_misspell_or_mistype_a_field(tmp_path: Path) -> None:
    """Readers ignore unknown fields, so the type checker keeps them out of what we write."""
    snippet = tmp_path / "writer.py"
    snippet.write_text(WRITER_TYPO)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(REPO / ".mypy_cache"),
            str(snippet),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'Unexpected keyword argument "shaa256"' in checked.stdout
    assert 'Argument "bytes" to "ModelFile" has incompatible type "str"' in checked.stdout


def test_a_manifest_declaring_an_adaptive_interval_needs_the_scale_output() -> None:
    """A writer bug (an adaptive interval without the graph output it reads) is refused
    at load, not answered with a fixed band or a 500 on the first request."""
    from estate.contract.bundle import AdaptiveInterval
    from estate.runtime.serving_model import ServingModel

    bundle = read_bundle(LocalStore(GOLDEN), "ames")
    interval = bundle.manifest.interval
    assert interval is not None
    spec = AdaptiveInterval(
        quantile=2.0,
        scale_min=0.05,
        scale_max=0.5,
        scale_model="test",
        calibration_rows=1,
        holdout_coverage=0.9,
        holdout_median_width=1.0,
    )
    manifest = bundle.manifest.model_copy(
        update={"interval": interval.model_copy(update={"adaptive": spec})}
    )
    with pytest.raises(BundleError, match="has no 'scale' output; re-export the bundle"):
        ServingModel(manifest, bundle.model_bytes)
