"""End-to-end training: both tasks, manifest contents, progress output and CLI errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from estate.cli.main import main
from estate.contract.bundle import Manifest, sha256_hex
from estate.storage.registry import list_versions, read_bundle, serving_version
from estate.storage.store import LocalStore
from estate.training.config import load_config
from estate.training.train import train

REPO = Path(__file__).resolve().parents[3]


def test_ames_manifest_holds_the_contract(ames_manifest: Manifest, ames_store: Path) -> None:
    m = ames_manifest
    assert m.task == "regression"
    assert m.output.name == "price"
    assert m.output.units == "USD"
    assert {c.name for c in m.candidates} == {"ridge", "random_forest", "xgboost", "blend"}
    for cand in m.candidates:
        assert len(cand.cv_fold_scores) == 3
        assert 0.05 < cand.cv_metrics["rmse_log"] < 0.3
        assert cand.holdout_metrics["r2"] > 0.6
    best = min(m.candidates, key=lambda c: c.cv_metrics["rmse_log"])
    assert m.chosen == best.name
    assert m.selection_metric == "rmse_log"
    assert m.interval is not None
    assert m.interval.level == 0.9
    assert 0.8 < m.interval.holdout_coverage < 0.97
    assert m.parity.max_rel_diff <= 1e-4
    assert m.parity.rows == m.training["rows_holdout"]
    data = (REPO / "data" / "ames.csv.gz").read_bytes()
    assert m.lineage.sha256 == sha256_hex(data)
    assert m.lineage.rows == 2930
    assert m.lineage.rows_used == 2925  # five sales above 4,000 sq ft filtered out
    assert "Order" in m.input.dropped
    assert "price" not in m.input.names()
    neighborhood = next(c for c in m.input.categorical if c.name == "Neighborhood")
    assert "CollgCr" in neighborhood.categories
    area = next(f for f in m.input.numeric if f.name == "area")
    assert area.min <= area.quantiles["p50"] <= area.max
    assert area.log1p
    assert {"scikit-learn", "onnxruntime", "skl2onnx"} <= set(m.libraries)
    store = LocalStore(ames_store)
    assert serving_version(store, "ames") == m.version
    assert sha256_hex(read_bundle(store, "ames").model_bytes) == m.model_file.sha256


def test_classification_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(REPO / "configs" / "quick_sale.toml")
    manifest = train(config, str(REPO / "data" / "quick_sale.csv"), str(tmp_path))
    out = capsys.readouterr().out
    assert "logistic: fold 1/5" in out
    assert "decision threshold" in out
    assert "promoted" in out
    assert manifest.task == "binary_classification"
    assert manifest.interval is None
    assert manifest.threshold is not None
    assert 0.0 < manifest.threshold.value < 1.0
    assert manifest.threshold.holdout_metrics["roc_auc"] > 0.65
    assert manifest.parity.max_rel_diff <= 1e-4
    assert list_versions(LocalStore(tmp_path), "quick-sale") == [manifest.version]


def test_failed_gate_writes_bundle_but_does_not_promote(
    tiny_ames_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tiny_ames_config.read_text().replace("r2 = 0.6", "r2 = 0.999")
    text = text.replace('name = "random_forest"', 'name = "rf"')  # keep it quick below
    cfg = tmp_path / "strict.toml"
    cfg.write_text(text)
    config = load_config(cfg).model_copy(
        update={"candidates": [c for c in load_config(cfg).candidates if c.name == "ridge"]}
    )
    store = tmp_path / "store"
    manifest = train(config, str(REPO / "data" / "ames.csv.gz"), str(store))
    out = capsys.readouterr().out
    assert "FAIL metrics: r2=" in out
    assert "NOT promoted: failed metrics: r2=" in out
    assert manifest.promotion is not None
    assert manifest.promotion.decision == "hold"
    assert [g.name for g in manifest.promotion.gates if not g.passed] == ["metrics"]
    assert list_versions(LocalStore(store), "ames") == [manifest.version]
    assert not LocalStore(store).exists("models/ames/serving.json")


def test_cli_help_and_clear_errors(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "estate.cli", "train"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, cwd=REPO)
    assert helped.returncode == 0
    assert "--config" in helped.stdout
    assert "gs://" in helped.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntask = "regression"\n')
    assert main(["train", "--config", str(bad)]) == 2
    missing = main(
        [
            "train",
            "--config",
            str(REPO / "configs/ames.toml"),
            "--data",
            str(tmp_path / "nope.csv"),
        ]
    )
    assert missing == 2


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    from estate.contract.errors import ConfigError

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'name = "x"\ndescription = "d"\ndata = "d.csv"\ntask = "binary_classification"\n'
        'target = "y"\noutput_name = "p"\n[[candidates]]\nname = "a"\nestimator = "logistic"\n'
    )
    with pytest.raises(ConfigError, match="positive_label"):
        load_config(cfg)
