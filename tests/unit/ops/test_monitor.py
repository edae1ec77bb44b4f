"""Drift end to end: predict logs real requests, `estate monitor` reads the log file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from estate.cli.main import main
from estate.contract.bundle import Manifest, normalize_category
from estate.runtime import drift

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def holdout(tiny_ames_config: Path) -> list[dict[str, Any]]:
    """The tiny model's own holdout rows (same config, same seed, same split)."""
    from estate.training.config import load_config
    from estate.training.data import load_table
    from estate.training.train import prepare

    config = load_config(tiny_ames_config)
    data = prepare(config, load_table(str(REPO / "data" / "ames.csv.gz")))
    return data.features.iloc[data.holdout].to_dict(orient="records")


def as_instances(rows: list[dict[str, Any]], manifest: Manifest) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        instance: dict[str, Any] = {}
        for f in manifest.input.numeric:
            value = row.get(f.name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                instance[f.name] = float(value)
        for c in manifest.input.categorical:
            instance[c.name] = normalize_category(row.get(c.name))
        out.append(instance)
    return out


@pytest.fixture
def api(serving_env: pytest.MonkeyPatch, ames_store: Path) -> FlaskClient:
    from functions_framework import create_app

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    return create_app(target="predict", source=str(REPO / "main.py")).test_client()


def served_log(
    api: FlaskClient, instances: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> str:
    """What the function printed while answering `instances` (plus unrelated noise)."""
    capsys.readouterr()
    answer = api.post("/", json={"instances": instances})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return "server started\n" + capsys.readouterr().out + '{"severity": "ERROR"}\n'


def test_reference_histograms_are_in_the_manifest(ames_manifest: Manifest) -> None:
    ref = ames_manifest.drift
    assert ref is not None
    assert set(ref.numeric) == {f.name for f in ames_manifest.input.numeric}
    assert set(ref.categorical) == {c.name for c in ames_manifest.input.categorical}
    area = ref.numeric["area"]
    assert len(area.proportions) == len(area.edges) + 1 == drift.BINS
    assert sum(area.proportions) + area.missing == pytest.approx(1.0)
    assert all(0.08 < p < 0.12 for p in area.proportions)  # deciles of training rows
    assert sum(ref.categorical["Neighborhood"].proportions.values()) == pytest.approx(1.0)
    assert ref.prediction.edges[0] > 50_000  # prices in dollars, not log dollars


def test_holdout_traffic_passes(
    api: FlaskClient,
    holdout: list[dict[str, Any]],
    ames_store: Path,
    ames_manifest: Manifest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs = tmp_path / "predictions.jsonl"
    logs.write_text(served_log(api, as_instances(holdout, ames_manifest), capsys))
    report = tmp_path / "report.json"
    code = main(
        ["monitor", "--logs", str(logs), "--artifacts", str(ames_store), "--json", str(report)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{len(holdout)} logged predictions" in printed
    assert "OK: every PSI is at most 0.2" in printed
    data = json.loads(report.read_text())
    assert data["drifted"] == []
    assert max(r["psi"] for r in data["results"]) < 0.2


def test_shifted_traffic_is_flagged(
    api: FlaskClient,
    holdout: list[dict[str, Any]],
    ames_store: Path,
    ames_manifest: Manifest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bigger, newer houses, all in one neighbourhood: a market the model never saw."""
    shifted = as_instances(holdout, ames_manifest)
    for row in shifted:
        row["area"] = row.get("area", 1500.0) * 1.6
        row["Year.Built"] = 2008.0
        row["Neighborhood"] = "NridgHt"
    logs = tmp_path / "predictions.jsonl"
    logs.write_text(served_log(api, shifted, capsys))
    report = tmp_path / "report.json"
    code = main(
        ["monitor", "--logs", str(logs), "--artifacts", str(ames_store), "--json", str(report)]
    )
    printed = capsys.readouterr().out
    assert code == 1, printed
    flagged = set(json.loads(report.read_text())["drifted"])
    assert {"area", "Year.Built", "Neighborhood", "prediction (price)"} <= flagged
    assert "NridgHt: " in printed
    assert "DRIFT:" in printed


def test_too_few_rows_or_wrong_version_is_a_usage_error(
    api: FlaskClient,
    holdout: list[dict[str, Any]],
    ames_store: Path,
    ames_manifest: Manifest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs = tmp_path / "few.jsonl"
    logs.write_text(served_log(api, as_instances(holdout[:20], ames_manifest), capsys))
    assert main(["monitor", "--logs", str(logs), "--artifacts", str(ames_store)]) == 2
    assert "Only 20 logged predictions" in capsys.readouterr().err
    other = logs.read_text().replace(ames_manifest.version, "v20200101T000000Z-abcdef")
    logs.write_text(other)
    assert main(["monitor", "--logs", str(logs), "--artifacts", str(ames_store)]) == 2
    assert "No logged predictions of ames/" in capsys.readouterr().err


def test_batch_lines_of_either_body_form_and_old_per_row_lines_report_the_same(
    api: FlaskClient,
    holdout: list[dict[str, Any]],
    ames_store: Path,
    ames_manifest: Manifest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Logs of an old deployment (one line per row) still read; a batch's lines read as
    its rows, whether the batch came as rows or as columns."""
    from estate.contract.predlog import PredictionBatchLine, parse_log_line

    rows = as_instances(holdout, ames_manifest)
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {n: [r.get(n) for r in rows] for n in names}
    batch = served_log(api, rows, capsys)
    capsys.readouterr()
    assert api.post("/", json={"inputs": columns}).status_code == 200
    columnar = capsys.readouterr().out
    per_row = []  # each batch row as the line the old writer made of it
    for text in batch.splitlines():
        parsed = parse_log_line(text)
        if isinstance(parsed, PredictionBatchLine):
            per_row += [r.to_json() for r in parsed.rows()]
    assert len(per_row) == len(rows)
    reports = []
    for name, text in (("batch", batch), ("columnar", columnar), ("rows", "\n".join(per_row))):
        (tmp_path / f"{name}.jsonl").write_text(text)
        out = tmp_path / f"{name}.json"
        args = ["--logs", str(tmp_path / f"{name}.jsonl"), "--artifacts", str(ames_store)]
        assert main(["monitor", *args, "--json", str(out)]) == 0, capsys.readouterr().out
        reports.append(json.loads(out.read_text()))
    assert reports[0]["rows"] == len(rows)
    assert reports[1] == reports[0] == reports[2]
