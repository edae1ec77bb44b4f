"""`score` and `monitor` on gs:// URIs, against a real fake-gcs-server."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from estate.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_score_streams_from_and_to_cloud_storage(
    gcs_server: str,
    ames_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from google.cloud import storage

    bucket = storage.Client().bucket(gcs_server)
    folder = uuid.uuid4().hex[:8]
    bucket.blob(f"{folder}/ames.csv.gz").upload_from_filename(str(REPO / "data" / "ames.csv.gz"))
    source = f"gs://{gcs_server}/{folder}/ames.csv.gz"
    target = f"gs://{gcs_server}/{folder}/scores.csv"
    code = main(
        [
            "score",
            "--input",
            source,
            "--output",
            target,
            "--id-column",
            "PID",
            "--artifacts",
            str(ames_store),
            "--chunk-rows",
            "1000",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "scored 2,930 rows" in capsys.readouterr().out
    local = pacsv.read_csv(REPO / "data" / "ames.csv.gz")
    scores = pacsv.read_csv(io.BytesIO(bucket.blob(f"{folder}/scores.csv").download_as_bytes()))
    assert scores.num_rows == local.num_rows
    assert scores["id"].to_pylist() == local["PID"].to_pylist()


def test_monitor_reads_a_log_folder_on_cloud_storage(
    gcs_server: str,
    ames_store: Path,
    ames_manifest: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two exported log files under one prefix, lines wrapped in jsonPayload like a sink's."""
    import json

    from google.cloud import storage

    bucket = storage.Client().bucket(gcs_server)
    folder = uuid.uuid4().hex[:8]
    version = ames_manifest.version  # type: ignore[attr-defined]
    rows = pacsv.read_csv(REPO / "data" / "ames.csv.gz").slice(0, 300).to_pylist()
    lines = [
        json.dumps(
            {
                "jsonPayload": {
                    "event": "prediction",
                    "model": {"name": "ames", "version": version},
                    "features": {"area": r["area"], "Neighborhood": r["Neighborhood"]},
                    "output": {"price": float(r["price"])},
                }
            }
        )
        for r in rows
    ]
    bucket.blob(f"{folder}/logs/00.json").upload_from_string("\n".join(lines[:150]))
    bucket.blob(f"{folder}/logs/01.json").upload_from_string("\n".join(lines[150:]))
    code = main(
        [
            "monitor",
            "--logs",
            f"gs://{gcs_server}/{folder}/logs/",
            "--artifacts",
            str(ames_store),
            "--all",
        ]
    )
    printed = capsys.readouterr().out
    assert "300 logged predictions" in printed
    # Only two features were sent: every other one is 100 % missing, which is drift.
    assert code == 1
    assert "Overall.Qual" in printed.split("DRIFT:")[1]
