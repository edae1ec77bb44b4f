"""The explainer file (`estate.contract.bundle.EXPLAINER_ARRAYS`): the exporter writes the
contract's arrays plus TreeSHAP's solved tables; serving reads those tables as they are,
and they equal the tables a file without them gets solved at load."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estate.contract.bundle import (
    EXPLAINER_ARRAYS,
    EXPLAINER_SOLVED_PREFIX,
    Manifest,
    sha256_hex,
    verify_explainer_bytes,
)
from estate.contract.errors import BundleError
from estate.export.shap_tables import Built, build_tables
from estate.runtime.explainer import Explainer, ShapTables
from estate.runtime.treeshap import SOLVED_FORMAT, tree_shap

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests" / "support" / "bundles" / "v1"


def _read(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _unsolved(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays as a file written before the solved tables holds them."""
    return {k: v for k, v in arrays.items() if not k.startswith(EXPLAINER_SOLVED_PREFIX)}


def _assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Key for key: same dtype, shape and bytes (NaN included)."""
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert (got[k].dtype, got[k].shape) == (v.dtype, v.shape), k
        assert got[k].tobytes() == v.tobytes(), k


@pytest.fixture(scope="module")
def ames(tiny_ames_config: Path) -> Any:
    from estate.training.config import load_config
    from estate.training.data import load_table
    from estate.training.train import prepare

    return prepare(load_config(tiny_ames_config), load_table(str(REPO / "data" / "ames.csv.gz")))


def _built(kind: str, ames: Any) -> Built:
    """Tables of a small model of each shape: the Ames blend (ridge + depth-3 XGBoost:
    whole-tree tables), depth-6 XGBoost (subtree blocks), a random forest (deep paths:
    per-path tables and recurrences), ridge alone (no trees)."""
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    from estate.training import candidates

    Z, y = ames.Z[ames.train], ames.y[ames.train]
    model: Any
    if kind == "blend":
        members = {
            "ridge": ("ridge", {"alpha": 5.0, "scale": False}),
            "xgboost": ("xgboost", {"n_estimators": 30, "max_depth": 3, "n_jobs": 1}),
        }
        model = candidates.build(
            "blend",
            {"members": ["ridge", "xgboost"], "weights": [0.4, 0.6]},
            classifier=False,
            seed=0,
            members=members,
        ).fit(Z, y)
    elif kind == "xgboost-depth6":
        model = xgb.XGBRegressor(n_estimators=20, max_depth=6, n_jobs=1).fit(Z, y)
    elif kind == "random_forest":
        model = RandomForestRegressor(
            n_estimators=4, max_features=0.3, min_samples_leaf=3, random_state=0, n_jobs=1
        ).fit(Z, y)
    else:
        model = candidates.build("ridge", {"alpha": 5.0}, classifier=False, seed=0).fit(Z, y)
    return build_tables(ames.encoder.layout, model, classifier=False, Z_sample=Z[:200])


def _rows(ames: Any) -> np.ndarray:
    """Encoded holdout rows, a few with NaN cells (the route that needs the paths' default
    directions; only direct callers send NaN, the encoder imputes)."""
    Z = ames.Z[ames.holdout[:40]].astype(np.float64)
    Z[::5, :3] = np.nan
    return np.asarray(Z)


KINDS = ["blend", "xgboost-depth6", "random_forest", "ridge"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_exporter_writes_the_contract_arrays_and_the_solved_tables(
    kind: str, ames: Any
) -> None:
    built = _built(kind, ames)
    arrays = _read(built.to_bytes())
    solved = {k for k in arrays if k.startswith(EXPLAINER_SOLVED_PREFIX)}
    assert set(arrays) - solved == set(EXPLAINER_ARRAYS)
    assert bool(solved) == (kind != "ridge")  # a linear model has no trees to solve
    _assert_same_arrays(arrays, built.arrays)  # the file holds exactly what was built
    assert built.to_bytes() == built.to_bytes()  # same tables, same bytes, same sha256


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "ridge"])
def test_tables_read_from_the_file_equal_tables_solved_at_load(kind: str, ames: Any) -> None:
    arrays = _read(_built(kind, ames).to_bytes())
    from_file = ShapTables.of(arrays)
    at_load = ShapTables.of(_unsolved(arrays))  # as a bundle exported before the tables
    _assert_same_arrays(from_file.solved_arrays(), at_load.solved_arrays())
    Z = _rows(ames)
    assert from_file.paths is not None
    assert at_load.paths is not None
    # Every route: the solved tables for finite rows, the per-path one for rows with NaN.
    assert np.array_equal(tree_shap(from_file.paths, Z), tree_shap(at_load.paths, Z))
    assert np.array_equal(from_file.paths.predict(Z), at_load.paths.predict(Z))
    finite = ames.Z[ames.holdout[:40]].astype(np.float64)
    assert np.array_equal(from_file.shap_encoded(finite), at_load.shap_encoded(finite))


def test_solved_tables_of_another_layout_are_solved_again_not_misread(ames: Any) -> None:
    arrays = _read(_built("blend", ames).to_bytes())
    Z = ames.Z[ames.holdout[:40]].astype(np.float64)
    want = ShapTables.of(arrays).shap_encoded(Z)
    other = dict(arrays)
    other[f"{EXPLAINER_SOLVED_PREFIX}format"] = np.array(SOLVED_FORMAT + 1)
    table = f"{EXPLAINER_SOLVED_PREFIX}cells0_table"
    other[table] = np.zeros_like(arrays[table])  # would explain nothing if it were read
    assert np.array_equal(ShapTables.of(other).shap_encoded(Z), want)


def test_the_golden_v1_file_holds_the_contract_arrays_and_no_solved_tables() -> None:
    """A file written by the format-1 code before the solved tables (the list is theirs)."""
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(GOLDEN), "ames")
    assert bundle.explainer_bytes is not None
    assert set(_read(bundle.explainer_bytes)) == set(EXPLAINER_ARRAYS)


def _explainer_file(ames_store: Path, manifest: Manifest) -> Path:
    return ames_store / "models" / "ames" / manifest.version / "explainer.npz"


def test_the_trained_bundle_serves_the_tables_it_was_exported_with(
    ames_store: Path, ames_manifest: Manifest
) -> None:
    data = _explainer_file(ames_store, ames_manifest).read_bytes()
    arrays = _read(data)
    assert any(k.startswith(EXPLAINER_SOLVED_PREFIX) for k in arrays)
    served = Explainer(ames_manifest, data)
    _assert_same_arrays(served.tables.solved_arrays(), ShapTables.of(arrays).solved_arrays())
    _assert_same_arrays(
        served.tables.solved_arrays(), ShapTables.of(_unsolved(arrays)).solved_arrays()
    )


def test_a_bundle_exported_before_the_solved_tables_serves_the_same_exact_answers(
    ames_store: Path, ames_manifest: Manifest
) -> None:
    """The file rewritten without its solved tables (manifest checksum to match), as a
    bundle exported before them: loading solves them, and explanations are the same and
    still add up to the graph's own output."""
    from estate.runtime.serving_model import ServingModel
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    old_bytes = _resaved(_unsolved(_read(_explainer_file(ames_store, ames_manifest).read_bytes())))
    assert ames_manifest.explainer is not None
    old_manifest = ames_manifest.model_copy(
        update={
            "explainer": ames_manifest.explainer.model_copy(
                update={"sha256": sha256_hex(old_bytes), "bytes": len(old_bytes)}
            )
        }
    )
    verify_explainer_bytes(old_manifest, old_bytes)
    new = ServingModel(ames_manifest, bundle.model_bytes, 1, bundle.explainer_bytes)
    old = ServingModel(old_manifest, bundle.model_bytes, 1, old_bytes)
    assert new.explainer is not None
    assert old.explainer is not None
    numeric = np.tile(np.arange(len(new.numeric), dtype=np.float64), (4, 1))
    numeric[1] = np.nan  # every value imputed
    numeric[2] *= 7.0
    categorical = np.empty((4, len(new.categorical)), dtype=object)
    categorical[:] = [c.impute for c in new.categorical]
    _, raw, _ = new.run(numeric, categorical)
    phi = old.explainer.shap(numeric, categorical)
    assert np.array_equal(phi, new.explainer.shap(numeric, categorical))
    total = old.explainer.base + phi.sum(axis=1)
    assert np.abs(total - old.explainer.explained(raw)).max() < 1e-4


def _resaved(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("drop", ["path_value", "encoded_names", "solved_cells0_out_base"])
def test_a_file_lacking_an_array_is_refused_saying_what_to_do(
    ames_store: Path, ames_manifest: Manifest, drop: str
) -> None:
    arrays = _read(_explainer_file(ames_store, ames_manifest).read_bytes())
    assert drop in arrays
    del arrays[drop]
    with pytest.raises(BundleError, match=rf"{drop.removeprefix('solved_')}.*re-export"):
        Explainer(ames_manifest, _resaved(arrays))
