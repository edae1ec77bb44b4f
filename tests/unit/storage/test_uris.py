"""One reading of a data URI (local path, file://, gs://) for training, batch and ops."""

from __future__ import annotations

from pathlib import Path

import pytest

from estate.contract.errors import ConfigError, NotFoundError
from estate.storage.uris import local_path, read_bytes, split_gs


def test_split_gs_gives_bucket_and_object_name() -> None:
    assert split_gs("gs://bucket/data/ames.csv") == ("bucket", "data/ames.csv")
    assert split_gs("gs://bucket/a b/ü.parquet") == ("bucket", "a b/ü.parquet")


@pytest.mark.parametrize("uri", ["gs://bucket", "gs://bucket/", "gs:///data.csv", "gs://"])
def test_a_gs_uri_without_bucket_or_object_is_refused_with_the_form_to_use(uri: str) -> None:
    with pytest.raises(ConfigError, match="use gs://BUCKET/PATH"):
        split_gs(uri)
    with pytest.raises(ConfigError, match="use gs://BUCKET/PATH"):
        read_bytes(uri)


def test_local_paths_and_file_uris_read_the_same_bytes(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_bytes(b"a,b\n1,2\n")
    assert local_path(f"file://{data}") == data
    assert read_bytes(str(data)) == read_bytes(f"file://{data}") == b"a,b\n1,2\n"


def test_a_missing_local_file_is_not_found_and_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="pass --data PATH or gs://BUCKET/PATH"):
        read_bytes(str(tmp_path / "absent.csv"))
    with pytest.raises(NotFoundError):
        read_bytes(str(tmp_path))  # a folder is not a data file
