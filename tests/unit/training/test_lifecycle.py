"""Promotion gates, the ``estate`` lifecycle commands and data lineage, end to end.

Each training here is a ridge-only tiny Ames run (~2 s): a strong ridge (alpha 5) and a
weak one (alpha 1000) on the same data, seed and therefore the same holdout rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, REPO, ridge_config

from estate.cli.main import main
from estate.contract.bundle import Manifest, Promotion, sha256_hex
from estate.storage.registry import list_versions, read_manifest, serving_pointer
from estate.storage.store import LocalStore
from estate.training.gates import apply_decision, repack, schema_changes
from estate.training.lineage import snapshot_key


def estate_train(config: Path, store: Path, *extra: str) -> Manifest:
    before = set(list_versions(LocalStore(store), "ames"))
    assert main(["train", "--config", str(config), "--output", str(store), *extra]) == 0
    (version,) = set(list_versions(LocalStore(store), "ames")) - before
    return read_manifest(LocalStore(store), "ames", version)


def verdict(manifest: Manifest) -> Promotion:
    assert manifest.promotion is not None
    return manifest.promotion


def test_gates_promote_better_hold_worse_and_rollback_restores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    weak, strong = ridge_config(tmp_path, 1000.0), ridge_config(tmp_path, 5.0)

    first = estate_train(weak, store)
    assert verdict(first).decision == "promote"
    assert verdict(first).champion is None
    better = estate_train(strong, store)
    assert verdict(better).decision == "promote"
    assert verdict(better).champion == first.version
    pointer = serving_pointer(LocalStore(store), "ames")
    assert (pointer.champion, pointer.previous) == (better.version, [first.version])
    capsys.readouterr()

    worse = estate_train(weak, store)
    out = capsys.readouterr().out
    held = verdict(worse)
    assert held.decision == "hold"
    assert [g.name for g in held.gates] == [
        "metrics",
        "parity",
        "explanation_additivity",
        "schema",
        "champion",
    ]
    additivity = next(g for g in held.gates if g.name == "explanation_additivity")
    assert "linear explainer" in additivity.detail
    assert [g.name for g in held.gates if not g.passed] == ["champion"]
    assert f"is worse than champion {better.version}" in held.reason
    assert "FAIL champion: holdout rmse_log" in out
    assert "NOT promoted: failed champion" in out
    assert list_versions(LocalStore(store), "ames") == sorted(
        [first.version, better.version, worse.version]
    )  # stored though not promoted
    assert serving_pointer(LocalStore(store), "ames").champion == better.version

    assert main(["models", "--store", str(store)]) == 0
    table = capsys.readouterr().out
    lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("v")}
    assert lines[better.version].rstrip().endswith("champion")
    assert "rollback target" in lines[first.version]
    assert " hold " in lines[worse.version]
    assert "pointer last changed" in table
    assert "promoted by training: gates passed" in table

    # A held version needs --force; then rollback restores the champion it replaced.
    assert main(["promote", worse.version, "--store", str(store)]) == 2
    assert "did not pass its gates" in capsys.readouterr().err
    assert main(["promote", worse.version, "--force", "--store", str(store)]) == 0
    assert serving_pointer(LocalStore(store), "ames").champion == worse.version
    assert main(["rollback", "--store", str(store)]) == 0
    assert f"rolled back from {worse.version} to {better.version}" in capsys.readouterr().out
    assert serving_pointer(LocalStore(store), "ames").champion == better.version


def test_canary_commands_and_models_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    champion = estate_train(ridge_config(tmp_path, 5.0), store)
    challenger = estate_train(ridge_config(tmp_path, 5.0), store)  # equal: passes
    assert verdict(challenger).decision == "promote"
    assert main(["rollback", "--store", str(store)]) == 0  # champion serves again
    assert main(["promote", "--store", str(store)]) == 2  # no canary running yet
    assert "no canary to promote" in capsys.readouterr().err

    assert main(["promote", challenger.version, "--canary", "10", "--store", str(store)]) == 0
    assert "at 10%" in capsys.readouterr().out
    assert main(["models", "--json", "--store", str(store)]) == 0
    listing = json.loads(capsys.readouterr().out)
    roles = {r["version"]: r["role"] for r in listing["versions"]}
    assert roles == {champion.version: "champion", challenger.version: "canary 10%"}
    assert listing["pointer"]["canary"] == {"version": challenger.version, "percent": 10.0}

    assert main(["promote", "--store", str(store)]) == 0  # the canary becomes champion
    pointer = serving_pointer(LocalStore(store), "ames")
    assert (pointer.champion, pointer.canary) == (challenger.version, None)
    assert main(["promote", challenger.version, "--canary", "100", "--store", str(store)]) == 2


def test_schema_gate_holds_a_changed_contract_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    estate_train(ridge_config(tmp_path, 5.0), store)
    no_neighborhood = ridge_config(tmp_path, 5.0, drop=("Order", "PID", "Neighborhood"))

    changed = estate_train(no_neighborhood, store)
    schema = next(g for g in verdict(changed).gates if g.name == "schema")
    assert not schema.passed
    assert "features removed: Neighborhood" in schema.detail
    assert "--allow-schema-change" in schema.detail

    allowed = estate_train(no_neighborhood, store, "--allow-schema-change")
    schema = next(g for g in verdict(allowed).gates if g.name == "schema")
    assert schema.passed
    assert "allowed by flag" in schema.detail
    # The champion still ran on the same rows (Neighborhood sent as missing to neither).
    assert "on the same 585 rows" in next(
        g.detail for g in verdict(allowed).gates if g.name == "champion"
    )


def test_schema_changes_allow_new_categories_only(ames_manifest: Manifest) -> None:
    m = ames_manifest
    assert schema_changes(m, m) == []
    cats = m.input.categorical
    grown = [
        c.model_copy(update={"categories": [*c.categories, "Brand-new"]}) if i == 0 else c
        for i, c in enumerate(cats)
    ]
    shrunk = [
        c.model_copy(update={"categories": c.categories[1:]}) if i == 0 else c
        for i, c in enumerate(cats)
    ]
    as_numeric = m.input.numeric[0].model_copy()
    as_categorical = cats[0].model_copy(update={"name": as_numeric.name})

    def with_input(**update: object) -> Manifest:
        return m.model_copy(update={"input": m.input.model_copy(update=update)})

    assert schema_changes(m, with_input(categorical=grown)) == []
    assert schema_changes(m, with_input(categorical=shrunk)) == [
        f"{cats[0].name} lost categories: {cats[0].categories[0]}"
    ]
    retyped = with_input(numeric=m.input.numeric[1:], categorical=[*cats, as_categorical])
    assert schema_changes(m, retyped) == [f"{as_numeric.name}: numeric -> categorical"]
    log_free = m.model_copy(
        update={"output": m.output.model_copy(update={"target_transform": "none"})}
    )
    assert schema_changes(m, log_free) == ["output target_transform 'log' -> 'none'"]


def test_repack_matches_columns_by_name_and_marks_absent_as_missing(
    ames_manifest: Manifest,
) -> None:
    import numpy as np

    source = ames_manifest.input
    target = source.model_copy(
        update={"numeric": list(reversed(source.numeric)), "categorical": source.categorical[1:]}
    )
    n_num, n_cat = len(source.numeric), len(source.categorical)
    numeric = np.arange(2 * n_num, dtype=np.float64).reshape(2, n_num)
    categorical = np.array([[f"c{j}"] * 1 for j in range(n_cat)] * 2, dtype=object).reshape(
        2, n_cat
    )
    out_num, out_cat = repack(numeric, categorical, source, target)
    assert out_num.tolist() == numeric[:, ::-1].tolist()
    assert out_cat.tolist() == categorical[:, 1:].tolist()
    less = source.model_copy(update={"numeric": source.numeric[:1]})
    out_num, _ = repack(numeric[:, :1], categorical, less, source)
    assert out_num[:, 0].tolist() == numeric[:, 0].tolist()
    assert np.isnan(out_num[:, 1:]).all()


def test_training_refuses_to_promote_if_the_champion_moved_meanwhile(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    first = estate_train(ridge_config(tmp_path, 5.0), store_path)
    second = estate_train(ridge_config(tmp_path, 5.0), store_path)
    store = LocalStore(store_path)
    # second's gates compared it with `first`; pretend the pointer moved on since.
    stale = second.model_copy(
        update={"promotion": verdict(second).model_copy(update={"champion": "v-other"})}
    )
    message = apply_decision(store, stale)
    assert message.startswith("NOT promoted: the champion changed from v-other to")
    assert f"estate promote {second.version}" in message
    assert serving_pointer(store, "ames").champion == second.version
    assert first.version in serving_pointer(store, "ames").previous


def test_training_snapshots_its_data_and_retrains_from_exactly_it(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    config = ridge_config(tmp_path, 5.0)
    original = estate_train(config, store_path)
    digest = sha256_hex(DATA.read_bytes())
    key = snapshot_key(digest, str(DATA))
    assert key == f"datasets/sha256/{digest}/ames.csv.gz"
    store = LocalStore(store_path)
    assert original.lineage.sha256 == digest
    assert original.lineage.snapshot_uri == f"{store.uri}/{key}"
    assert sha256_hex(store.read_bytes(key)) == digest

    retrained = estate_train(config, store_path, "--retrain-from", original.version)
    assert retrained.lineage.source_uri == original.lineage.snapshot_uri
    assert retrained.lineage.sha256 == original.lineage.sha256
    assert retrained.lineage.snapshot_uri == original.lineage.snapshot_uri
    assert store.list("datasets") == [key]  # write-once: stored a single time
    same = {c.name: c.holdout_metrics for c in retrained.candidates}
    assert same == {c.name: c.holdout_metrics for c in original.candidates}


def test_champion_gate_on_a_classifier_compares_roc_auc(tmp_path: Path) -> None:
    """quick-sale with one logistic candidate: a heavily regularised one ranks worse."""
    base = (REPO / "configs/quick_sale.toml").read_text()
    head = base.split("[[candidates]]")[0].replace('data = "data/', f'data = "{REPO}/data/')
    store = tmp_path / "store"

    def logistic(c: float) -> Path:
        path = tmp_path / f"logistic-{c}.toml"
        path.write_text(
            head + f'[[candidates]]\nname = "logistic"\nestimator = "logistic"\n'
            f"params = {{ C = {c} }}\n\n[gates]\nmin = {{ roc_auc = 0.5 }}\n"
        )
        return path

    def trained(config: Path) -> Manifest:
        before = set(list_versions(LocalStore(store), "quick-sale"))
        assert main(["train", "--config", str(config), "--output", str(store), "--quiet"]) == 0
        (version,) = set(list_versions(LocalStore(store), "quick-sale")) - before
        return read_manifest(LocalStore(store), "quick-sale", version)

    champion = trained(logistic(1.0))
    worse = verdict(trained(logistic(1e-5)))
    gate = next(g for g in worse.gates if g.name == "champion")
    assert not gate.passed, gate
    assert gate.detail.startswith("holdout roc_auc ")
    assert f"worse than champion {champion.version}" in gate.detail
    assert serving_pointer(LocalStore(store), "quick-sale").champion == champion.version
