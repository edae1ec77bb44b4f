"""The TreeSHAP algorithm: brute-force Shapley values, shap.TreeExplainer, the ONNX tables."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estate.export.shap_tables import (
    _path_args,
    _sklearn_trees,
    _Trees,
    _xgb_trees,
    build_tables,
    shap_values,
)
from estate.runtime.explainer import ShapTables
from estate.runtime.treeshap import TreePaths, paths_from_nodes, tree_shap

REPO = Path(__file__).resolve().parents[3]


def _tables(model: Any, xgboost: bool) -> _Trees:
    trees = _xgb_trees(model) if xgboost else _sklearn_trees(model, classifier=False)
    out = _Trees.empty()
    for t in trees:
        out.add(t, 1.0 if xgboost else 1.0 / len(trees), leq=not xgboost)
    return out


def _expectation(trees: _Trees, x: np.ndarray, S: set[int]) -> float:
    """E[f(x) | x_S] the path-dependent way: unknown features follow both children by cover."""

    def walk(t: int, n: int) -> float:
        left, right = trees.left[t][n], trees.right[t][n]
        if left < 0:
            return float(trees.value[t][n])
        f = int(trees.feature[t][n])
        if f in S:
            v = x[f]
            if math.isnan(v):
                go_left = bool(trees.default_left[t][n])
            elif trees.leq[t]:
                go_left = v <= trees.threshold[t][n]
            else:
                go_left = v < trees.threshold[t][n]
            return walk(t, left if go_left else right)
        cover = trees.cover[t]
        return (cover[left] * walk(t, left) + cover[right] * walk(t, right)) / cover[n]

    return sum(w * walk(t, 0) for t, w in enumerate(trees.weight))


def _brute_force(trees: _Trees, x: np.ndarray) -> np.ndarray:
    """Exact Shapley values by enumerating every subset of features."""
    F = x.size
    phi = np.zeros(F)
    for i in range(F):
        others = [j for j in range(F) if j != i]
        for size in range(F):
            weight = math.factorial(size) * math.factorial(F - size - 1) / math.factorial(F)
            for S in itertools.combinations(others, size):
                with_i = _expectation(trees, x, {*S, i})
                phi[i] += weight * (with_i - _expectation(trees, x, set(S)))
    return phi


def _paths(trees: _Trees) -> TreePaths:
    return paths_from_nodes(**_path_args(trees.arrays()))


@pytest.mark.parametrize("route", ["tree-tables", "block-tables", "pattern-table", "recurrences"])
@pytest.mark.parametrize("kind", ["xgboost", "random_forest"])
def test_matches_brute_force_shapley_on_small_trees_with_missing_values(
    kind: str, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated features on a path, both split rules, NaN following the default direction;
    through whole-tree outcome tables (depth-3 trees), tables of subtree blocks (depth 5),
    per-path pattern tables and the per-request recurrences."""
    import estate.runtime._treeshap_cells
    import estate.runtime._treeshap_groups

    lookup = route != "recurrences"
    depth = {"tree-tables": 3, "block-tables": 5}.get(route, 4)
    monkeypatch.setattr(estate.runtime._treeshap_groups, "_TABLE_DEPTH", 8 if lookup else 0)
    blocks = route.endswith("-tables")
    monkeypatch.setattr(estate.runtime._treeshap_cells, "_CELL_CONDITIONS", 7 if blocks else 0)
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    y = X[:, 0] * 2 + X[:, 1] * X[:, 2] + np.sin(3 * X[:, 0]) + rng.normal(0, 0.1, 400)
    if kind == "xgboost":
        X[::4, 0] = np.nan  # XGBoost learns where missing values go
        y[::4] = -3.0
        model: Any = xgb.XGBRegressor(n_estimators=3, max_depth=depth, n_jobs=1).fit(X, y)
    else:
        model = RandomForestRegressor(
            n_estimators=2, max_depth=depth, random_state=0, n_jobs=1
        ).fit(X, y)
    trees = _tables(model, kind == "xgboost")
    paths = _paths(trees)
    if blocks:  # every path in a block solved whole; NaN rows take the covered paths
        assert paths._cells
        assert not any(g.depth for g in paths._groups)
        n_trees = len(trees.weight)
        assert (paths._cells[0].n_trees == n_trees) == (route == "tree-tables")
    else:
        assert not paths._cells
        assert all((g.table is not None) == lookup for g in paths._groups if g.depth)
    repeated = any(
        np.unique(trees.feature[t][trees.left[t] >= 0]).size < (trees.left[t] >= 0).sum()
        for t in range(len(trees.weight))
    )
    assert repeated  # the decomposition must merge a feature met twice on a path
    rows = X[:12].astype(np.float64)
    got = tree_shap(paths, rows)
    # The tables hold float32: 6e-8 relative to path contributions of up to ~2 here.
    tol = 1e-7 if lookup else 1e-9
    for r in range(rows.shape[0]):
        want = _brute_force(trees, rows[r])
        np.testing.assert_allclose(got[r], want, atol=tol, rtol=0)
        assert got[r].sum() + paths.expected_value() == pytest.approx(
            _expectation(trees, rows[r], set(range(5))), abs=tol
        )


@pytest.fixture(scope="module")
def ames(tiny_ames_config: Path) -> Any:
    """The Ames data split and encoded exactly as training does (same holdout rows)."""
    from estate.training.config import load_config
    from estate.training.data import load_table
    from estate.training.train import prepare

    return prepare(load_config(tiny_ames_config), load_table(str(REPO / "data" / "ames.csv.gz")))


def _fit(kind: str, ames: Any) -> Any:
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    Z, y = ames.Z[ames.train], ames.y[ames.train]
    if kind.startswith("xgboost"):
        depth = int(kind.removeprefix("xgboost").removeprefix("-depth") or 4)
        return xgb.XGBRegressor(
            n_estimators=60, max_depth=depth, learning_rate=0.1, subsample=0.8, n_jobs=1
        ).fit(Z, y)
    return RandomForestRegressor(
        n_estimators=8, max_features=0.3, min_samples_leaf=3, random_state=0, n_jobs=1
    ).fit(Z, y)


@pytest.mark.parametrize("kind", ["xgboost", "xgboost-depth3", "xgboost-depth6", "random_forest"])
def test_agrees_with_shap_tree_explainer_on_ames(kind: str, ames: Any) -> None:
    """Depth 3: every tree from whole-tree tables; depth 4 and 6: subtree blocks; the
    forest (leaves of up to ~12 features): per-path tables and recurrences."""
    import shap

    model = _fit(kind, ames)
    built = build_tables(
        ames.encoder.layout, model, classifier=False, Z_sample=ames.Z[ames.train[:300]]
    )
    Z = ames.Z[ames.holdout].astype(np.float64)
    ours = shap_values(built, Z)
    explainer = shap.TreeExplainer(model)
    theirs = explainer.shap_values(ames.Z[ames.holdout])
    assert np.abs(ours - theirs).max() < 1e-5
    paths = ShapTables.of(built.arrays).paths
    assert paths is not None
    whole = bool(paths._cells)
    per_path = any(g.depth for g in paths._groups)
    if kind.startswith("xgboost"):
        assert whole
        assert not per_path or kind == "xgboost-depth6"
        if kind == "xgboost-depth3":
            assert paths._cells[0].n_trees == 60  # one block per tree
    else:
        assert per_path
    base = float(np.ravel(explainer.expected_value)[0])
    assert float(built.arrays["base_value"]) == pytest.approx(base, abs=1e-4)
    assert np.abs(ours).sum() > 1.0  # the comparison is not between two zero matrices


@pytest.mark.parametrize("kind", ["xgboost", "random_forest"])
def test_tables_are_the_served_onnx_trees(kind: str, ames: Any) -> None:
    """Same features, float32 thresholds, split rule, missing direction and leaves as ONNX.

    onnxmltools renumbers XGBoost's nodes, so both trees are walked from the root together.
    """
    from onnx import helper

    from estate.export.onnx_graph import build_graph

    model = _fit(kind, ames)
    trees = _tables(model, kind == "xgboost")
    graph = build_graph(ames.encoder.layout, model, classifier=False, log_target=True, doc="test")
    (node,) = [n for n in graph.graph.node if n.op_type == "TreeEnsembleRegressor"]
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    onnx_nodes = {
        (t, n): k
        for k, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True))
    }
    leaves = dict(
        zip(
            zip(a["target_treeids"], a["target_nodeids"], strict=True),
            a["target_weights"],
            strict=True,
        )
    )
    assert max(a["nodes_treeids"]) + 1 == len(trees.weight)
    rule = "BRANCH_LEQ" if kind == "random_forest" else "BRANCH_LT"
    compared = {"split": 0, "leaf": 0}
    for t in range(len(trees.weight)):
        stack = [(0, 0)]  # (our node, ONNX node id)
        while stack:
            ours, theirs = stack.pop()
            k = onnx_nodes[(t, theirs)]
            mode = a["nodes_modes"][k].decode()
            if trees.left[t][ours] < 0:
                assert mode == "LEAF"
                want = trees.value[t][ours] * trees.weight[t]  # a forest averages its trees
                assert leaves[(t, theirs)] == pytest.approx(want, rel=1e-6, abs=1e-9)
                compared["leaf"] += 1
                continue
            assert mode == rule
            assert a["nodes_featureids"][k] == trees.feature[t][ours]
            assert np.float32(a["nodes_values"][k]) == trees.threshold[t][ours]  # bit-identical
            tracks = bool(a["nodes_missing_value_tracks_true"][k])
            assert tracks == bool(trees.default_left[t][ours])
            stack.append((int(trees.left[t][ours]), int(a["nodes_truenodeids"][k])))
            stack.append((int(trees.right[t][ours]), int(a["nodes_falsenodeids"][k])))
            compared["split"] += 1
    assert compared["split"] > 100
    assert compared["leaf"] > 100


def test_weighted_blend_of_ridge_and_xgboost_adds_up_to_its_prediction(ames: Any) -> None:
    """The Ames production shape: VotingRegressor(ridge pipeline, XGBoost), weights .4/.6."""
    from estate.training import candidates

    members = {
        "ridge": ("ridge", {"alpha": 5.0, "scale": False}),
        "xgboost": ("xgboost", {"n_estimators": 40, "max_depth": 3}),
    }
    blend = candidates.build(
        "blend",
        {"members": ["ridge", "xgboost"], "weights": [0.4, 0.6]},
        classifier=False,
        seed=0,
        members=members,
    )
    blend.estimators[1][1].set_params(n_jobs=1)
    blend.fit(ames.Z[ames.train], ames.y[ames.train])
    built = build_tables(
        ames.encoder.layout, blend, classifier=False, Z_sample=ames.Z[ames.train[:200]]
    )
    assert built.kinds == {"ridge": "linear", "xgboost": "xgboost"}
    Z = ames.Z[ames.holdout]
    phi = shap_values(built, Z.astype(np.float64))
    total = float(built.arrays["base_value"]) + phi.sum(axis=1)
    assert np.abs(total - blend.predict(Z)).max() < 1e-4
    ridge = blend.estimators_[0]
    linear_phi = built.arrays["linear_coef"] * (Z - built.arrays["linear_mean"])
    centred = 0.4 * (ridge.predict(Z) - ridge.steps[-1][1].intercept_)
    assert np.abs(linear_phi.sum(axis=1) - centred).max() < 1e-6


@pytest.mark.parametrize("kind", ["xgboost", "random_forest"])
def test_classifiers_explain_the_scale_the_graph_computes(kind: str) -> None:
    """XGBoost: log-odds (the margin); random forest: the probability itself."""
    import shap
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    from estate.training.config import load_config
    from estate.training.data import load_table
    from estate.training.train import prepare

    config = load_config(REPO / "configs" / "quick_sale.toml")
    data = prepare(config, load_table(str(REPO / "data" / "quick_sale.csv")))
    Z, y = data.Z[data.train], data.y[data.train]
    if kind == "xgboost":
        model: Any = xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1).fit(Z, y)
        want = model.predict(data.Z[data.holdout], output_margin=True)
    else:
        model = RandomForestClassifier(
            n_estimators=5, min_samples_leaf=5, random_state=0, n_jobs=1
        ).fit(Z, y)
        want = model.predict_proba(data.Z[data.holdout])[:, 1]
    built = build_tables(data.encoder.layout, model, classifier=True, Z_sample=Z[:200])
    assert built.scale == ("log_odds" if kind == "xgboost" else "raw")
    phi = shap_values(built, data.Z[data.holdout].astype(np.float64))
    total = float(built.arrays["base_value"]) + phi.sum(axis=1)
    assert np.abs(total - want).max() < 1e-4
    theirs = np.asarray(shap.TreeExplainer(model).shap_values(data.Z[data.holdout]))
    if theirs.ndim == 3:  # one matrix per class: keep the positive class
        theirs = theirs[..., 1]
    assert np.abs(phi - theirs).max() < 1e-4
