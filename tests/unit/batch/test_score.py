"""`estate score`: chunked batch scoring through the bundle, and the BigQuery ML SQL."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from estate.cli.main import main
from estate.contract.bundle import Manifest, normalize_category

REPO = Path(__file__).resolve().parents[3]
AMES = REPO / "data" / "ames.csv.gz"
NARROW = [
    "PID",
    "area",
    "Overall.Qual",
    "Year.Built",
    "Neighborhood",
    "Kitchen.Qual",
    "Garage.Cars",
]


@pytest.fixture(scope="module")
def ames() -> pa.Table:
    return pacsv.read_csv(AMES)


def served(ames_store: Path, rows: list[dict[str, Any]], manifest: Manifest) -> np.ndarray:
    """What the predict function answers for these rows (the reference for batch scoring)."""
    from estate.runtime.serving_model import ServingModel
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    bundle = read_bundle(LocalStore(ames_store), "ames")
    model = ServingModel(bundle.manifest, bundle.model_bytes)
    instances = []
    for row in rows:
        instance: dict[str, Any] = {}
        for f in manifest.input.numeric:
            v = row.get(f.name)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                instance[f.name] = float(v)
        for c in manifest.input.categorical:
            if c.name in row:
                instance[c.name] = normalize_category(row[c.name])
        instances.append(instance)
    return np.asarray([p.value for p in model.predict(instances)])


def test_gzipped_csv_scores_like_the_predict_function(
    ames_store: Path,
    ames_manifest: Manifest,
    ames: pa.Table,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "scores.csv"
    code = main(
        [
            "score",
            "--input",
            str(AMES),
            "--output",
            str(out),
            "--id-column",
            "PID",
            "--artifacts",
            str(ames_store),
            "--chunk-rows",
            "500",
        ]
    )
    assert code == 0
    assert f"scored {ames.num_rows:,} rows with ames {ames_manifest.version}" in (
        capsys.readouterr().out
    )
    scores = pacsv.read_csv(
        out, convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()})
    )
    assert scores.column_names == ["id", "price", "lower", "upper"]
    assert scores["id"].to_pylist() == [str(x) for x in ames["PID"].to_pylist()]
    sample = list(range(0, ames.num_rows, 37))
    rows = ames.take(sample).to_pylist()
    expected = served(ames_store, rows, ames_manifest)
    got = scores["price"].to_numpy()[sample]
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    lower, upper = scores["lower"].to_numpy(), scores["upper"].to_numpy()
    assert np.all(lower < scores["price"].to_numpy())
    assert np.all(scores["price"].to_numpy() < upper)


def test_parquet_with_absent_columns_imputes_like_serving(
    ames_store: Path, ames_manifest: Manifest, ames: pa.Table, tmp_path: Path
) -> None:
    narrow = ames.select(NARROW).slice(0, 300)
    source, out = tmp_path / "houses.parquet", tmp_path / "scores.parquet"
    pq.write_table(narrow, source)
    assert (
        main(
            [
                "score",
                "--input",
                str(source),
                "--output",
                str(out),
                "--id-column",
                "PID",
                "--artifacts",
                str(ames_store),
                "--quiet",
            ]
        )
        == 0
    )
    scores = pq.read_table(out)
    expected = served(ames_store, narrow.to_pylist(), ames_manifest)
    np.testing.assert_allclose(scores["price"].to_numpy(), expected, rtol=1e-9)


def test_bad_arguments_are_usage_errors(
    ames_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["score", "--artifacts", str(ames_store), "--input", str(AMES), "--quiet"]
    assert main([*base, "--output", str(tmp_path / "x.csv"), "--id-column", "nope"]) == 2
    assert "--id-column 'nope' is not a column" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "x.json")]) == 2
    assert "write .csv or .parquet" in capsys.readouterr().err
    assert (
        main(
            [
                "score",
                "--artifacts",
                str(ames_store),
                "--input",
                "missing.csv",
                "--output",
                str(tmp_path / "y.csv"),
            ]
        )
        == 2
    )
    assert "missing.csv not found" in capsys.readouterr().err


PEAK = """
import json, resource, sys
from estate.runtime.serving_model import ServingModel
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore
from estate.batch.score import score_file
bundle = read_bundle(LocalStore(sys.argv[1]), "ames")
model = ServingModel(bundle.manifest, bundle.model_bytes)
result = score_file(model, sys.argv[2], sys.argv[3], id_column="PID", quiet=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": result.rows, "peak_kb": peak}))
"""


def write_rows(base: pa.Table, rows: int, path: Path) -> None:
    """`rows` rows resampled from `base`, written block by block (never all in memory)."""
    rng = np.random.default_rng(7)
    with pacsv.CSVWriter(path, base.schema) as writer:
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            writer.write_table(base.take(rng.integers(0, base.num_rows, n)))


def test_memory_is_flat_in_the_input_size(ames_store: Path, ames: pa.Table, tmp_path: Path) -> None:
    """Peak RSS of a whole scoring process: 4x the rows must not mean more memory."""
    base = ames.select(NARROW)
    peaks = {}
    for rows in (100_000, 400_000):
        source = tmp_path / f"houses-{rows}.csv"
        write_rows(base, rows, source)
        out = subprocess.run(
            [sys.executable, "-c", PEAK, str(ames_store), str(source), str(tmp_path / "o.csv")],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["rows"] == rows
        peaks[rows] = report["peak_kb"]
        source.unlink()
    assert peaks[400_000] < peaks[100_000] * 1.1 + 16_000, peaks


def test_bqml_sql_names_every_input_in_graph_order(
    ames_store: Path, ames_manifest: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"gs://estate-artifacts/estate/models/ames/{ames_manifest.version}/model.onnx"
    assert (
        main(
            [
                "score",
                "--bqml",
                "--artifacts",
                str(ames_store),
                "--model-uri",
                uri,
                "--bq-model",
                "estate.ames",
                "--bq-table",
                "estate.listings",
                "--id-column",
                "PID",
            ]
        )
        == 0
    )
    sql = capsys.readouterr().out
    assert f"OPTIONS (MODEL_TYPE = 'ONNX', MODEL_PATH = '{uri}');" in sql
    assert "FROM ML.PREDICT(\n  MODEL `estate.ames`," in sql
    numeric = [f.name for f in ames_manifest.input.numeric]
    order = [sql.index(f"SAFE_CAST(`{n.replace('.', '_')}` AS FLOAT64)") for n in numeric]
    assert order == sorted(order)
    assert sql.count("AS STRING)), ''), 'NA'), '") == len(ames_manifest.input.categorical)
    for c in ames_manifest.input.categorical:  # null, '' and an untrained 'NA' as packing does
        fill = "NA" if "NA" in c.categories else c.impute
        column = c.name.replace(".", "_")
        assert f"NULLIF(NULLIF(TRIM(CAST(`{column}` AS STRING)), ''), 'NA'), '{fill}')" in sql
    assert "] AS numeric," in sql
    assert "] AS categorical" in sql
    assert main(["score", "--bqml", "--artifacts", str(ames_store)]) == 2
    assert "imports models from Cloud Storage" in capsys.readouterr().err
