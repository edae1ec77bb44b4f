"""One ``--store`` option in every `estate` command; the old spellings (``--output`` of
train and submit, ``--artifacts`` of score and monitor) stay accepted, because job specs
already deployed (Cloud Scheduler's job JSON, submitted Vertex AI jobs) send them."""

from __future__ import annotations

import argparse

import pytest

from estate.cli.main import build_parser

STORE = "gs://estate-artifacts/estate"
SUBMIT = ["submit", "--project", "p", "--staging", "gs://b/vertex"]

#: Each command, the rest of a valid command line, and the name its store option had.
COMMANDS = [
    (["train", "--config", "configs/ames.toml"], "--output"),
    (["score", "--input", "in.csv", "--output", "scores.csv"], "--artifacts"),
    (["monitor", "--logs", "gs://logs/"], "--artifacts"),
    (SUBMIT, "--output"),
    (["promote", "v1"], None),
    (["rollback"], None),
    (["models"], None),
]


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "old"), COMMANDS, ids=lambda v: v[0] if isinstance(v, list) else v
)
def test_every_command_takes_store_and_its_old_name(argv: list[str], old: str | None) -> None:
    assert parse([*argv, "--store", STORE]).store == STORE
    if old is not None:
        assert parse([*argv, old, STORE]).store == STORE


@pytest.mark.parametrize(("argv", "old"), COMMANDS[:3] + COMMANDS[4:])
def test_the_store_defaults_to_the_local_artifacts_folder(argv: list[str], old: str | None) -> None:
    assert parse(argv).store == "./artifacts"


def test_job_command_lines_of_the_previous_release_still_parse() -> None:
    """The container args that `estate submit` and the retrain function used to write."""
    train = parse(["train", "--config", "c.toml", "--data", "gs://d/x.csv", "--output", STORE])
    assert (train.config, train.data, train.store) == ("c.toml", "gs://d/x.csv", STORE)
    score = ["score", "--input", "gs://d/in.csv", "--output", "gs://d/out.csv"]
    scored = parse([*score, "--artifacts", STORE, "--model", "ames"])
    assert (scored.output, scored.store, scored.model) == ("gs://d/out.csv", STORE, "ames")
    monitor = parse(["monitor", "--logs", "gs://l/", "--artifacts", STORE, "--model", "ames"])
    assert (monitor.logs, monitor.store) == ("gs://l/", STORE)
    submit = parse([*SUBMIT, "--output", STORE, "--config", "c.toml", "--data", "gs://d/x.csv"])
    assert submit.store == STORE


@pytest.mark.parametrize(("argv", "old"), [c for c in COMMANDS if c[1] is not None])
def test_both_names_at_once_are_refused(
    argv: list[str], old: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse([*argv, "--store", STORE, old, "./other"])
    assert exited.value.code == 2
    assert f"argument {old}: not allowed with argument --store" in capsys.readouterr().err


def test_submit_needs_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse([*SUBMIT, "--config", "c.toml", "--data", "gs://d/x.csv"])
    assert "--store is required" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "old"), COMMANDS)
def test_help_teaches_only_store(
    argv: list[str], old: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse([argv[0], "--help"])
    shown = capsys.readouterr().out
    assert "--store URI" in shown
    assert "--artifacts" not in shown
    if argv[0] in ("train", "submit"):
        assert "--output" not in shown
