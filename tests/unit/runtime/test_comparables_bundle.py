"""The comparables table as part of the bundle (the tiny Ames bundle of tests/conftest.py):
checksummed and refused like the model when damaged, written with its manifest, parsed on
first use, and absent from bundles that have none (test_comparables.py: the similarity)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from _comparables import arrays

from estate.contract.errors import BundleError, NoComparablesError
from estate.runtime.comparables import Comparables
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import Bundle, read_bundle, write_bundle
from estate.storage.store import LocalStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bundle(ames_store: Path) -> Bundle:
    return read_bundle(LocalStore(ames_store), "ames")


@pytest.mark.parametrize("damage", ["alter", "truncate", "remove"])
def test_a_damaged_table_is_refused_like_the_model(
    ames_store: Path, bundle: Bundle, tmp_path: Path, damage: str
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    path = store / "models" / "ames" / bundle.manifest.version / "comparables.npz"
    data = path.read_bytes()
    if damage == "alter":  # same length, one byte changed: only the checksum sees it
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        path.write_bytes(data[:-10])
    else:
        path.unlink()
    expected = "missing" if damage == "remove" else "truncated or altered"
    with pytest.raises(BundleError, match=rf"comparables\.npz.*{expected}|{expected}"):
        read_bundle(LocalStore(store), "ames")


def test_write_bundle_keeps_table_and_manifest_together(bundle: Bundle, tmp_path: Path) -> None:
    target = LocalStore(tmp_path)
    args = (bundle.model_bytes, bundle.explainer_bytes, bundle.card_bytes)
    assert bundle.comparables_bytes is not None
    with pytest.raises(BundleError, match="come together"):
        write_bundle(target, bundle.manifest, *args)
    with pytest.raises(BundleError, match="truncated or altered"):
        write_bundle(target, bundle.manifest, *args, bundle.comparables_bytes + b" ")
    write_bundle(target, bundle.manifest, *args, bundle.comparables_bytes)
    again = read_bundle(target, "ames", bundle.manifest.version)
    assert again.comparables_bytes == bundle.comparables_bytes


def test_a_table_that_does_not_match_its_manifest_is_refused(bundle: Bundle) -> None:
    """Checksummed but wrong inside (a writer's bug): refused at load, naming the file."""
    assert bundle.comparables_bytes is not None
    a = arrays(bundle.comparables_bytes)
    a["num_names"] = np.array(["no.such.feature"], dtype=np.str_)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **a)
    with pytest.raises(BundleError, match=r"comparables\.npz .*does not match"):
        Comparables(bundle.manifest, buffer.getvalue())
    with pytest.raises(BundleError, match="not a readable numpy archive"):
        Comparables(bundle.manifest, b"PK\x03\x04 not a zip")
    pickled = io.BytesIO()
    np.savez(pickled, price=np.array([{"x": 1}], dtype=object))
    with pytest.raises(BundleError, match="not a readable numpy archive"):
        Comparables(bundle.manifest, pickled.getvalue())


def test_the_table_is_parsed_on_first_use(bundle: Bundle) -> None:
    """A predict instance does not parse the table at load (its cold start), so a
    checksummed table that is wrong inside is refused where it is first needed."""
    assert bundle.comparables_bytes is not None
    a = arrays(bundle.comparables_bytes)
    a["num_names"] = np.array(["no.such.feature"], dtype=np.str_)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **a)
    args = (bundle.manifest, bundle.model_bytes)
    served = ServingModel(*args, comparables_bytes=buffer.getvalue())
    with pytest.raises(BundleError, match=r"comparables\.npz .*does not match"):
        served.comparable_sales  # noqa: B018 (the property parses)
    good = ServingModel(*args, comparables_bytes=bundle.comparables_bytes)
    assert good._comparables is None  # nothing parsed yet
    table = good.comparable_sales
    assert table is not None
    assert good.comparable_sales is table  # parsed once


def test_a_model_without_a_table_says_why(bundle: Bundle) -> None:
    plain = ServingModel(
        bundle.manifest.model_copy(update={"comparables": None}), bundle.model_bytes
    )
    assert plain.comparable_sales is None
    reason = plain.no_comparables_reason
    assert reason is not None
    assert "declares no [comparables] columns" in reason
    numeric, categorical, _ = plain.pack([{"area": 1500}])
    with pytest.raises(NoComparablesError, match="has no comparable sales"):
        plain.comparables(numeric, categorical, 5)
    classifier = bundle.manifest.model_copy(
        update={"comparables": None, "task": "binary_classification"}
    )
    assert "classification model" in (
        ServingModel(classifier, bundle.model_bytes).no_comparables_reason or ""
    )


def test_the_golden_v1_bundle_loads_and_serves_without_comparables() -> None:
    store = LocalStore(REPO / "tests" / "support" / "bundles" / "v1")
    old = read_bundle(store, "ames")
    assert old.manifest.comparables is None
    assert old.comparables_bytes is None
    served = ServingModel(old.manifest, old.model_bytes)
    assert served.comparable_sales is None
    assert served.no_comparables_reason
