"""`estate submit`: the CustomJob the real aiplatform client sends, checked at HTTP level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from vertex_stub import vertex_stub

from estate.cli.commands.submit import request_from_args
from estate.cli.main import build_parser, main
from estate.contract.errors import ConfigError
from estate.serving import jobs as vertex

ARGS = [
    "submit",
    "--project",
    "estate-prod",
    "--region",
    "europe-west4",
    "--config",
    "configs/ames.toml",
    "--data",
    "gs://estate-data/ames/2026-11.csv",
    "--store",
    "gs://estate-artifacts/estate",
    "--staging",
    "gs://estate-artifacts/vertex",
    "--service-account",
    "trainer@estate-prod.iam.gserviceaccount.com",
    "--label",
    "team=valuation",
    "--run-id",
    "estate-20261124-060000",
]


def test_real_client_sends_the_custom_job() -> None:
    args = build_parser().parse_args([*ARGS, "--image", "europe-docker.pkg.dev/p/estate/train:1"])
    body = vertex.build_custom_job(request_from_args(args))
    with vertex_stub() as stub:
        created = vertex.submit_custom_job(
            body,
            "estate-prod",
            "europe-west4",
            api_endpoint=stub.url,
            credentials=AnonymousCredentials(),
        )
    (sent,) = stub.requests
    assert sent.method == "POST"
    assert sent.path.split("?")[0] == "/v1/projects/estate-prod/locations/europe-west4/customJobs"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == body  # the client sent exactly the JSON that --write-json writes
    pool = sent.body["jobSpec"]["workerPoolSpecs"][0]
    assert pool["containerSpec"] == {
        "imageUri": "europe-docker.pkg.dev/p/estate/train:1",
        "command": ["estate"],
        "args": [
            "train",
            "--config",
            "configs/ames.toml",
            "--data",
            "gs://estate-data/ames/2026-11.csv",
            "--store",
            "gs://estate-artifacts/estate",
        ],
    }
    assert pool["machineSpec"] == {"machineType": "n1-standard-4"}
    spec = sent.body["jobSpec"]
    assert spec["serviceAccount"] == "trainer@estate-prod.iam.gserviceaccount.com"
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == (
        "gs://estate-artifacts/vertex/jobs/estate-20261124-060000/"
    )
    assert sent.body["labels"] == {
        "app": "estate-advisor",
        "run": "estate-20261124-060000",
        "trigger": "manual",
        "team": "valuation",
    }
    assert created["name"] == "projects/estate-prod/locations/europe-west4/customJobs/1234567890"
    assert created["state"] == "JOB_STATE_PENDING"


def test_the_default_image_is_the_one_cloud_build_pushes() -> None:
    args = build_parser().parse_args(ARGS)
    pool = vertex.build_custom_job(request_from_args(args))["jobSpec"]["workerPoolSpecs"][0]
    assert set(pool) == {"machineSpec", "replicaCount", "diskSpec", "containerSpec"}
    spec = pool["containerSpec"]
    assert (
        spec["imageUri"] == "europe-west4-docker.pkg.dev/estate-prod/estate-training/trainer:latest"
    )
    assert spec["command"] == ["estate"]
    assert spec["args"][0] == "train"
    other = build_parser().parse_args([*ARGS, "--name-prefix", "acme"])
    assert request_from_args(other).image == (
        "europe-west4-docker.pkg.dev/estate-prod/acme-training/trainer:latest"
    )


def test_the_prebuilt_image_path_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    """Vertex AI's prebuilt scikit-learn image is Python 3.10; the package needs 3.11."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([*ARGS, "--package", "gs://b/dist/estate_advisor-0.1.0.tar.gz"])
    assert "unrecognized arguments: --package" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="needs the training image"):
        vertex.build_custom_job(vertex.JobRequest("p", "r", ["train"], "gs://b/s", image=""))


def test_monitor_job_for_the_schedule(tmp_path: Path) -> None:
    """`--job monitor` writes the scheduled drift check: no JSON edited by hand."""
    base = ARGS[: ARGS.index("--config")] + ARGS[ARGS.index("--store") :]
    out = tmp_path / "monitor.json"
    logs = "gs://estate-prod-estate-logs/run.googleapis.com/stdout/"
    argv = [*base, "--job", "monitor", "--logs", logs, "--model", "quick-sale"]
    assert main([*argv, "--write-json", str(out)]) == 0
    body = json.loads(out.read_text())
    spec = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    assert spec["imageUri"].endswith("/estate-training/trainer:latest")
    assert spec["args"] == [
        "monitor",
        "--logs",
        logs,
        "--store",
        "gs://estate-artifacts/estate",
        "--model",
        "quick-sale",
    ]
    # What the job runs is a valid `estate monitor` command line.
    parsed = build_parser().parse_args(spec["args"])
    assert (parsed.logs, parsed.store, parsed.model) == (
        logs,
        "gs://estate-artifacts/estate",
        "quick-sale",
    )
    assert body["jobSpec"]["serviceAccount"].startswith("trainer@")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--job", "monitor"], "A drift check needs --logs"),
        (["--job", "score"], "Batch scoring needs --score-input"),
        (["--job", "monitor", "--score-input", "gs://b/x.csv"], "--score-input is for scoring"),
    ],
)
def test_job_kinds_need_their_flags(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ARGS[: ARGS.index("--config")] + ARGS[ARGS.index("--store") :]
    assert main([*base, "--dry-run", *extra]) == 2
    assert message in capsys.readouterr().err


def test_refused_job_names_the_cause() -> None:
    body = vertex.build_custom_job(
        vertex.JobRequest("p", "us-central1", ["train"], "gs://b/s", image="img", run_id="r1")
    )
    with vertex_stub(status=403) as stub, pytest.raises(ConfigError, match=r"refused.*403"):
        vertex.submit_custom_job(
            body, "p", "us-central1", api_endpoint=stub.url, credentials=AnonymousCredentials()
        )


def test_write_json_for_cloud_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "job.json"
    assert main([*ARGS, "--image", "img", "--write-json", str(out)]) == 0
    body = json.loads(out.read_text())
    assert body["displayName"] == "estate-20261124-060000"
    assert body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"][0] == "train"
    printed = capsys.readouterr().out
    assert (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/estate-prod/"
        "locations/europe-west4/customJobs" in printed
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--label", "Team=x"], "Label key 'Team'"),
        (["--label", "team"], "KEY=VALUE"),
        (["--staging", "/tmp/x"], "must be a gs:// folder"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_sent(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ARGS, "--image", "img", "--dry-run", *extra]) == 2
    assert message in capsys.readouterr().err


def test_batch_scoring_is_one_job_per_input_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ARGS[: ARGS.index("--config")] + ARGS[ARGS.index("--store") :]
    out = tmp_path / "jobs.json"
    shards = [
        "gs://estate-data/listings/part-000.csv.gz",
        "gs://estate-data/listings/part-001.parquet",
    ]
    argv = [*base, "--image", "img", "--write-json", str(out), "--id-column", "PID"]
    for uri in shards:
        argv += ["--score-input", uri]
    assert main([*argv, "--score-output-dir", "gs://estate-data/scores/"]) == 0
    jobs = json.loads(out.read_text())
    assert [j["displayName"] for j in jobs] == [
        "estate-20261124-060000-score-000",
        "estate-20261124-060000-score-001",
    ]
    assert [j["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"] for j in jobs] == [
        [
            "score",
            "--input",
            shards[0],
            "--output",
            "gs://estate-data/scores/part-000.scores.csv",
            "--store",
            "gs://estate-artifacts/estate",
            "--model",
            "ames",
            "--id-column",
            "PID",
        ],
        [
            "score",
            "--input",
            shards[1],
            "--output",
            "gs://estate-data/scores/part-001.scores.parquet",
            "--store",
            "gs://estate-artifacts/estate",
            "--model",
            "ames",
            "--id-column",
            "PID",
        ],
    ]
    assert main(argv) == 2
    assert "--score-output-dir" in capsys.readouterr().err
    assert main([*base, "--image", "img", "--dry-run"]) == 2
    assert "Training needs --config and --data" in capsys.readouterr().err
