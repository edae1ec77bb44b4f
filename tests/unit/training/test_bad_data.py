"""Bad data files, by class, through the real `estate train` and `estate score` CLIs.

Every class ends the same way: exit code 2, one ``error:`` line on stderr that names the
file (and the column and data row where there is one), no traceback, and nothing
written: no bundle, no data snapshot, no partial predictions, no temporary file.
Data rows count from 1 after the header.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from estate.cli.main import main

REPO = Path(__file__).resolve().parents[3]
AMES = REPO / "data" / "ames.csv.gz"
ROW = 7  # the data row each cell-level class spoils


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    """The first 200 Ames rows: enough to train the tiny config, fast to write."""
    return pd.read_csv(AMES, nrows=200)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def with_cell(frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    out = frame.astype({column: object})
    out.loc[ROW - 1, column] = value
    return out


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def bad_utf8(frame: pd.DataFrame) -> bytes:
    text = csv_bytes(with_cell(frame, "Neighborhood", "@@BAD@@"))
    return text.replace(b"@@BAD@@", b"N\xffAmes")


def extra_cell(frame: pd.DataFrame) -> bytes:
    lines = csv_bytes(frame).split(b"\n")
    lines[ROW] += b",surplus"  # lines[0] is the header
    return b"\n".join(lines)


@dataclass(frozen=True)
class Case:
    file_name: str
    make: Callable[[pd.DataFrame], bytes]
    expect: tuple[str, ...]  # fragments the one error line must hold


CASES = {
    "text in a numeric column": Case(
        "t.csv",
        lambda f: csv_bytes(with_cell(f, "area", "12OO sq ft")),
        (f"data row {ROW}", "'area'", "12OO sq ft", "not a number"),
    ),
    "text in a numeric Parquet column": Case(
        "t.parquet",
        lambda f: parquet_bytes(with_cell(f, "area", "abc").astype({"area": str})),
        (f"data row {ROW}", "'area'", "abc", "not a number"),
    ),
    "overflows float32": Case(
        "t.csv",
        lambda f: csv_bytes(with_cell(f, "area", 1e300)),
        (f"data row {ROW}", "'area'", "1e+300", "float32"),
    ),
    "infinity": Case(
        "t.csv",
        lambda f: csv_bytes(with_cell(f, "Lot.Area", "-inf")),
        (f"data row {ROW}", "'Lot.Area'", "-inf", "finite"),
    ),
    "bad UTF-8": Case("t.csv", bad_utf8, (f"data row {ROW}", "'Neighborhood'", "UTF-8")),
    "a row with an extra cell": Case(
        "t.csv", lambda f: extra_cell(f), (f"data row {ROW} has 85 cells, the header 84",)
    ),
    "empty file": Case("t.csv", lambda f: b"", ("is empty",)),
    "header only": Case("t.csv", lambda f: csv_bytes(f.iloc[:0]), ("no data rows",)),
    "corrupt gzip": Case(
        "t.csv.gz", lambda f: gzip.compress(csv_bytes(f))[:-300], ("not a readable gzip",)
    ),
    "not gzip at all": Case("t.csv.gz", lambda f: csv_bytes(f), ("not a readable gzip",)),
    "truncated Parquet": Case(
        "t.parquet", lambda f: parquet_bytes(f)[:-100], ("not a readable Parquet",)
    ),
}
TRAIN_ONLY = {
    "non-numeric target": Case(
        "t.csv",
        lambda f: csv_bytes(with_cell(f, "price", "ask the agent")),
        (f"data row {ROW}", "'price'", "ask the agent"),
    ),
    "target that overflows float32": Case(
        "t.csv",
        lambda f: csv_bytes(with_cell(f, "price", 1e39)),
        (f"data row {ROW}", "'price'", "float32"),
    ),
    "missing target column": Case(
        "t.csv", lambda f: csv_bytes(f.drop(columns=["price"])), ("'price' is not in",)
    ),
}
SCORE_ONLY = {
    "no feature column": Case(
        "t.csv", lambda f: b"foo;bar\n1;2\n3;4\n", ("none of the model's", "delimiter")
    ),
}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def assert_one_error_line(err: str, path: Path, expect: tuple[str, ...]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert str(path) in lines[0], err
    for fragment in expect:
        assert fragment in lines[0], (fragment, err)


@pytest.mark.parametrize("case", [*CASES, *TRAIN_ONLY])
def test_train_refuses_bad_data_in_one_line_and_writes_nothing(
    case: str,
    base: pd.DataFrame,
    tiny_ames_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = {**CASES, **TRAIN_ONLY}[case]
    data = tmp_path / "in" / spec.file_name
    data.parent.mkdir()
    data.write_bytes(spec.make(base))
    store = tmp_path / "artifacts"
    argv = ["train", "--config", str(tiny_ames_config), "--data", str(data)]

    code = main([*argv, "--output", str(store), "--quiet"])

    assert code == 2
    assert_one_error_line(capsys.readouterr().err, data, spec.expect)
    assert not store.exists() or files_under(store) == []  # no bundle, no snapshot


@pytest.mark.parametrize("case", [*CASES, *SCORE_ONLY])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_refuses_bad_data_in_one_line_and_writes_nothing(
    case: str,
    suffix: str,
    base: pd.DataFrame,
    ames_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = {**CASES, **SCORE_ONLY}[case]
    data = tmp_path / "in" / spec.file_name
    data.parent.mkdir()
    data.write_bytes(spec.make(base))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / f"scores{suffix}"
    argv = ["score", "--artifacts", str(ames_store), "--input", str(data), "--quiet"]

    code = main([*argv, "--output", str(output)])

    assert code == 2
    assert_one_error_line(capsys.readouterr().err, data, spec.expect)
    assert files_under(out_dir) == []  # no output, no temporary file


def test_a_bad_row_after_many_chunks_keeps_the_previous_output(
    base: pd.DataFrame, ames_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = pd.concat([base] * 20, ignore_index=True).astype({"area": float})  # 40 chunks of 100
    big.loc[len(big) - 3, "area"] = 1e300
    data = tmp_path / "big.csv"
    data.write_bytes(csv_bytes(big))
    output = tmp_path / "scores.csv"
    output.write_text("id,price\n0,1\n")  # an earlier run's result
    argv = ["score", "--artifacts", str(ames_store), "--input", str(data), "--quiet"]

    code = main([*argv, "--output", str(output), "--chunk-rows", "100"])

    assert code == 2
    assert f"data row {len(big) - 2}, column 'area'" in capsys.readouterr().err
    assert output.read_text() == "id,price\n0,1\n"
    assert files_under(tmp_path) == ["big.csv", "scores.csv"]


def test_the_installed_cli_prints_no_traceback(
    base: pd.DataFrame, ames_store: Path, tiny_ames_config: Path, tmp_path: Path
) -> None:
    data = tmp_path / "t.csv"
    data.write_bytes(csv_bytes(with_cell(base, "area", "abc")))
    run = [sys.executable, "-m", "estate.cli.main"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    commands = [
        ["score", "--artifacts", str(ames_store), "--output", str(tmp_path / "s.csv")],
        ["train", "--config", str(tiny_ames_config), "--output", str(tmp_path / "a")],
    ]
    for command in commands:
        flag = "--input" if command[0] == "score" else "--data"
        done = subprocess.run(
            [*run, *command, flag, str(data)], capture_output=True, text=True, env=env, cwd=REPO
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (
            f"error: {data}: data row {ROW}, column 'area': 'abc' is not a number"
            + (
                "; fix the cell, or leave it empty to impute it."
                if command[0] == "score"
                else " (the column's other cells are); fix the cell, or list the column in "
                "the config's `categorical` to treat it as categories."
            )
        )
    assert files_under(tmp_path) == ["t.csv"]
