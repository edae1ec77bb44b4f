"""`estate score` output safety: never in place, and complete or absent, locally and on GCS.

Cloud Storage runs on fake-gcs-server with the real client. Failures are injected in the
client's HTTP session (the request is really sent; its answer is lost or refused), and
the tests look at what a reader then finds at the output name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud.storage import Client as RealClient  # the scorer's is patched below

from estate.cli.main import main

REPO = Path(__file__).resolve().parents[3]
AMES = REPO / "data" / "ames.csv.gz"


@pytest.fixture(scope="module")
def csv_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 2,930 Ames rows as plain CSV (the scores of which are ~200 KB as CSV)."""
    path = tmp_path_factory.mktemp("input") / "houses.csv"
    pd.read_csv(AMES).to_csv(path, index=False)
    return path


def score(ames_store: Path, source: str, output: str, *extra: str) -> int:
    argv = ["score", "--artifacts", str(ames_store), "--input", source, "--output", output]
    return main([*argv, "--quiet", *extra])


def files_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- in place ------------------------------------------------------------------------------


def spellings(path: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    """Other names of the same file: each is made lazily, in the test's own folder."""
    yield "same text", lambda: str(path)
    yield "file://", lambda: f"file://{path}"
    yield "with ..", lambda: str(path.parent / ".." / path.parent.name / path.name)
    yield "relative", lambda: os.path.relpath(path)

    def symlink() -> str:
        link = path.parent / "link.csv"
        link.symlink_to(path)
        return str(link)

    def hardlink() -> str:
        link = path.parent / "hard.csv"
        os.link(path, link)
        return str(link)

    yield "symlink", symlink
    yield "hard link", hardlink


@pytest.mark.parametrize("spelling", [name for name, _ in spellings(Path("x"))])
def test_output_that_is_the_input_is_refused_before_anything_is_touched(
    spelling: str,
    ames_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "houses.csv"
    source.write_bytes(b"area,Neighborhood\n1500,NAmes\n")
    monkeypatch.chdir(tmp_path)
    output = dict(spellings(source))[spelling]()
    before = files_under(tmp_path)

    assert score(ames_store, str(source), output) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: --output {output} is the --input file"), err
    assert len(err.strip().splitlines()) == 1
    assert source.read_bytes() == b"area,Neighborhood\n1500,NAmes\n"
    assert files_under(tmp_path) == before


def test_same_gcs_object_is_refused(
    gcs_server: str, ames_store: Path, csv_input: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:8]}/houses.csv"
    blob: Any = gcs_blob(uri)
    blob.upload_from_filename(csv_input)

    assert score(ames_store, uri, uri) == 2

    assert "is the --input file" in capsys.readouterr().err
    assert blob.download_as_bytes() == csv_input.read_bytes()


# -- local: complete or absent ---------------------------------------------------------------


def test_local_output_replaces_the_old_file_only_when_complete(
    ames_store: Path, csv_input: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scores.csv"
    output.write_text("old\n")
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(csv_input).astype({"area": object})
    frame.loc[2900, "area"] = "n0pe"
    frame.to_csv(bad, index=False)

    assert score(ames_store, str(bad), str(output), "--chunk-rows", "100") == 2
    assert output.read_text() == "old\n"
    assert files_under(tmp_path) == ["bad.csv", "scores.csv"]

    assert score(ames_store, str(csv_input), str(output)) == 0
    assert len(pd.read_csv(output)) == 2930
    assert files_under(tmp_path) == ["bad.csv", "scores.csv"]
    assert oct(output.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_output_folder_that_does_not_exist_is_a_clear_error(
    ames_store: Path, csv_input: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score(ames_store, str(csv_input), str(tmp_path / "nope" / "s.csv")) == 2
    assert "does not exist; create it first" in capsys.readouterr().err


# -- Cloud Storage: complete or absent -----------------------------------------------------


class Interfering:
    """A requests session that really sends each request, then lets `hook` interfere
    with upload requests (raise instead of answering) — a lost or refused response."""

    def __init__(self, hook: Callable[[str, str, int], Exception | None]) -> None:
        self.session = requests.Session()
        self.hook = hook
        self.uploads = 0

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        response = self.session.request(method, url, *args, **kwargs)  # type: ignore[arg-type]
        if "/upload/" in url and method == "PUT":
            self.uploads += 1
            failure = self.hook(method, url, self.uploads)
            if failure is not None:
                raise failure
        return response

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


@pytest.fixture
def gcs_output(
    gcs_server: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[str, str, int], Exception | None]], tuple[str, Interfering]]:
    """A fresh output URI and the session the scorer's storage client will use."""
    from google.cloud import storage

    import estate.batch.score._files as score_files  # where open_output reads it

    monkeypatch.setattr(score_files, "GCS_CHUNK_BYTES", 256 << 10)  # many chunks
    real_client = storage.Client

    def make(hook: Callable[[str, str, int], Exception | None]) -> tuple[str, Interfering]:
        http = Interfering(hook)

        def client(*args: object, **kwargs: object) -> object:
            return real_client(project="test", credentials=AnonymousCredentials(), _http=http)

        monkeypatch.setattr(storage, "Client", client)
        return f"gs://{gcs_server}/{uuid.uuid4().hex[:8]}/scores.csv", http

    return make


def gcs_blob(uri: str) -> object:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return RealClient(project="test", credentials=AnonymousCredentials()).bucket(bucket).blob(name)


def read_gcs(uri: str) -> bytes | None:
    blob: object = gcs_blob(uri)
    if not blob.exists():  # type: ignore[attr-defined]
        return None
    data: bytes = blob.download_as_bytes()  # type: ignore[attr-defined]
    return data


def big_input(csv_input: Path, tmp_path: Path, bad_row: int | None = None) -> Path:
    """Five copies of Ames (~1 MB of scores: four 256 KiB chunks), a bad cell near the end."""
    frame = pd.concat([pd.read_csv(csv_input)] * 5, ignore_index=True)
    if bad_row is not None:
        frame = frame.astype({"area": object})
        frame.loc[bad_row - 1, "area"] = "n0pe"
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path


def test_gcs_output_is_complete_when_the_run_succeeds(
    gcs_output: Callable[..., tuple[str, Interfering]],
    ames_store: Path,
    csv_input: Path,
    tmp_path: Path,
) -> None:
    source = big_input(csv_input, tmp_path)
    uri, http = gcs_output(lambda *_: None)
    local = tmp_path / "local.csv"

    assert score(ames_store, str(source), uri, "--chunk-rows", "1000") == 0
    assert score(ames_store, str(source), str(local), "--chunk-rows", "1000") == 0

    assert http.uploads >= 4  # really streamed in chunks
    assert read_gcs(uri) == local.read_bytes()


def test_a_bad_row_after_uploaded_chunks_leaves_no_object(
    gcs_output: Callable[..., tuple[str, Interfering]],
    ames_store: Path,
    csv_input: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = 5 * 2930
    source = big_input(csv_input, tmp_path, bad_row=rows - 10)
    uri, http = gcs_output(lambda *_: None)

    assert score(ames_store, str(source), uri, "--chunk-rows", "1000") == 2

    assert f"data row {rows - 10}, column 'area'" in capsys.readouterr().err
    assert http.uploads >= 2  # chunks had gone up before the bad row was read
    assert read_gcs(uri) is None


def test_a_failed_chunk_upload_keeps_the_previous_object(
    gcs_output: Callable[..., tuple[str, Interfering]],
    ames_store: Path,
    csv_input: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = big_input(csv_input, tmp_path)

    def refuse_third(method: str, url: str, n: int) -> Exception | None:
        # Not a retryable kind: the upload fails for good in the middle of the file.
        return requests.exceptions.InvalidHeader("injected: bad header") if n == 3 else None

    uri, http = gcs_output(refuse_third)
    gcs_blob(uri).upload_from_string(b"id,price\n0,1\n")  # type: ignore[attr-defined]

    assert score(ames_store, str(source), uri, "--chunk-rows", "1000") == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot write {uri}: injected: bad header"), err
    assert http.uploads == 3
    assert read_gcs(uri) == b"id,price\n0,1\n"


def test_a_lost_chunk_response_ends_complete_or_absent_never_wrong(
    gcs_output: Callable[..., tuple[str, Interfering]],
    ames_store: Path,
    csv_input: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The client resumes after a lost chunk answer. Real GCS then completes the upload;
    fake-gcs-server stores the chunk twice, the client's final CRC32C check catches it
    after the object was finalised, and the scorer deletes that generation."""
    source = big_input(csv_input, tmp_path)

    def lose_second(method: str, url: str, n: int) -> Exception | None:
        return requests.exceptions.ConnectionError("injected: reset") if n == 2 else None

    uri, _ = gcs_output(lose_second)
    local = tmp_path / "local.csv"
    assert score(ames_store, str(source), str(local), "--chunk-rows", "1000") == 0

    code = score(ames_store, str(source), uri, "--chunk-rows", "1000")

    landed = read_gcs(uri)
    if code == 0:
        assert landed == local.read_bytes()
    else:
        assert f"error: Cannot write {uri}" in capsys.readouterr().err
        assert landed is None


@pytest.mark.parametrize("flag", ["--chunk-rows", "--threads"])
@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_chunk_rows_and_threads_must_be_whole_numbers_from_one(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["score", "--input", "in.csv", "--output", str(tmp_path / "o.csv"), flag, value]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err
    assert "Traceback" not in err


def test_a_bad_cell_in_a_gcs_input_is_named_like_a_local_one(
    gcs_server: str,
    ames_store: Path,
    csv_input: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = pd.read_csv(csv_input).astype({"area": object})
    frame.loc[2000, "area"] = "n0pe"
    uri = f"gs://{gcs_server}/{uuid.uuid4().hex[:8]}/houses.csv.gz"
    local = tmp_path / "houses.csv.gz"
    frame.to_csv(local, index=False, compression="gzip")
    blob: Any = gcs_blob(uri)
    blob.upload_from_filename(local)

    assert score(ames_store, uri, str(tmp_path / "s.csv")) == 2

    assert capsys.readouterr().err == (
        f"error: {uri}: data row 2001, column 'area': 'n0pe' is not a number; "
        "fix the cell, or leave it empty to impute it.\n"
    )
    assert files_under(tmp_path) == ["houses.csv.gz"]
