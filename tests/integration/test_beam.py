"""`estate beam-score` on Beam's local runner, on real Ames files: one answer everywhere.

Beam pins pyarrow and protobuf below the project's, so the pipeline runs in its own venv
(``make beam-venv``, part of ``make test``) as a subprocess; `estate score` and the
predict function run here. For the same rows (nulls included) all three give identical
prices and intervals.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import requests
from http_server import serve

from estate.cli.main import main
from estate.contract.bundle import Manifest

REPO = Path(__file__).resolve().parents[2]
AMES = REPO / "data" / "ames.csv.gz"
BEAM_PYTHON = REPO / ".venv-beam" / "bin" / "python"
ROWS = 400  # a small slice keeps make test fast; the bench runs 1,000,000


@pytest.fixture(scope="module")
def beam_python() -> Path:
    if not BEAM_PYTHON.exists():
        pytest.skip("no .venv-beam: run `make beam-venv` (make test builds it first)")
    return BEAM_PYTHON


@pytest.fixture(scope="module")
def ames_slice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first `ROWS` Ames rows as CSV and as Parquet (every column, NULLs kept)."""
    folder = tmp_path_factory.mktemp("slice")
    table = pacsv.read_csv(AMES).slice(0, ROWS)
    csv, parquet = folder / "houses.csv", folder / "houses.parquet"
    pacsv.write_csv(table, csv)
    pq.write_table(table, parquet)
    return {"csv": csv, "parquet": parquet}


def beam_score(python: Path, store: Path, source: Path, out: Path, *extra: str) -> pa.Table:
    command = [str(python), "-m", "estate.cli.main", "beam-score", "--input", str(source)]
    command += ["--output", str(out), "--store", str(store), "--id-column", "PID", *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scored" in done.stdout
    return pq.read_table(out).sort_by("id")


def estate_score(store: Path, source: Path, out: Path) -> pa.Table:
    command = ["score", "--input", str(source), "--output", str(out)]
    code = main([*command, "--store", str(store), "--id-column", "PID", "--quiet"])
    assert code == 0
    return pq.read_table(out).sort_by("id")


@pytest.fixture(scope="module")
def scored(
    beam_python: Path, ames_store: Path, ames_slice: dict[str, Path], tmp_path_factory: Any
) -> dict[str, pa.Table]:
    out = tmp_path_factory.mktemp("out")
    return {
        "score": estate_score(ames_store, ames_slice["csv"], out / "score.parquet"),
        "score_parquet": estate_score(ames_store, ames_slice["parquet"], out / "score-pq.parquet"),
        "beam_csv": beam_score(beam_python, ames_store, ames_slice["csv"], out / "csv.parquet"),
        "beam_parquet": beam_score(
            beam_python,
            ames_store,
            ames_slice["parquet"],
            out / "pq.parquet",
            "--chunk-rows",
            "64",  # several chunks, spread by the Reshuffle
        ),
    }


def test_beam_writes_estate_scores_columns_and_rows(
    scored: dict[str, pa.Table], ames_manifest: Manifest
) -> None:
    expected = ["id", ames_manifest.output.name, "lower", "upper"]
    for name in ("score", "beam_csv", "beam_parquet"):
        assert scored[name].column_names == expected, name
        assert scored[name].num_rows == ROWS, name
    assert scored["beam_csv"].schema == scored["score"].schema
    # From Parquet the id keeps the file's type (int64 PID), as in estate score.
    assert scored["beam_parquet"].schema == scored["score_parquet"].schema


def test_beam_matches_estate_score_row_for_row_nulls_included(
    scored: dict[str, pa.Table], ames_slice: dict[str, Path]
) -> None:
    # The slice has NULL cells (imputed): the rows that hold them must match as well.
    source = pacsv.read_csv(ames_slice["csv"])
    assert any(source.column(c).null_count for c in source.column_names)
    reference = scored["score"].to_pylist()
    assert scored["beam_csv"].to_pylist() == reference
    assert scored["beam_parquet"].to_pylist() == scored["score_parquet"].to_pylist()
    assert [{**r, "id": str(r["id"])} for r in scored["beam_parquet"].to_pylist()] == reference


@pytest.fixture(scope="module")
def server(ames_store: Path) -> Iterator[str]:
    with serve(ames_store, "ames") as url:
        yield url


def test_predict_over_http_gives_the_same_prices_and_intervals(
    scored: dict[str, pa.Table],
    ames_slice: dict[str, Path],
    ames_manifest: Manifest,
    server: str,
) -> None:
    names = set(ames_manifest.input.names())
    table = pacsv.read_csv(
        ames_slice["csv"], convert_options=pacsv.ConvertOptions(strings_can_be_null=False)
    )
    rows = table.to_pylist()
    instances = [{k: v for k, v in row.items() if k in names} for row in rows]
    answer = requests.post(server, json={"instances": instances}, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    predictions = answer.json()["predictions"]
    beam = {r["id"]: r for r in scored["beam_csv"].to_pylist()}
    price = ames_manifest.output.name
    for row, pred in zip(rows, predictions, strict=True):
        got = beam[str(row["PID"])]
        assert got[price] == pred[price], row["PID"]
        assert (got["lower"], got["upper"]) == (
            pred["interval"]["lower"],
            pred["interval"]["upper"],
        ), row["PID"]


@pytest.mark.parametrize(
    ("source", "output", "says"),
    [
        ("missing/*.csv", "out.parquet", "matches no file"),
        ("houses.csv", "out.csv", "writes Parquet"),
    ],
)
def test_a_bad_input_or_output_stops_before_the_pipeline_starts(
    beam_python: Path,
    ames_store: Path,
    ames_slice: dict[str, Path],
    tmp_path: Path,
    source: str,
    output: str,
    says: str,
) -> None:
    folder = ames_slice["csv"].parent
    command = [str(beam_python), "-m", "estate.cli.main", "beam-score"]
    command += ["--input", str(folder / source), "--output", str(tmp_path / output)]
    command += ["--store", str(ames_store)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert says in done.stderr
    assert not (tmp_path / output).exists()
