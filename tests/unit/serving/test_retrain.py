"""System tier: the ``retrain`` CloudEvent function over real HTTP, submitting to a Vertex stub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from http_server import free_port
from vertex_stub import VertexStub, vertex_stub

REPO = Path(__file__).resolve().parents[3]
#: What Cloud Build sets: the training image it pushed, tagged with its build id.
IMAGE = "europe-west4-docker.pkg.dev/estate-prod/estate-training/trainer:b1"


@contextmanager
def serve_retrain(env: dict[str, str], logs: Path) -> Iterator[str]:
    """functions-framework serving ``retrain``; stdout+stderr go to a file (never blocks)."""
    port = free_port()
    command = [sys.executable, "-m", "functions_framework", "--source", "main.py"]
    command += ["--target", "retrain", "--host", "127.0.0.1", "--port", str(port)]
    with logs.open("wb") as sink:
        proc = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"retrain server did not start: {logs.read_text()}")
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def finalize(url: str, name: str, event_type: str = "google.cloud.storage.object.v1.finalized"):
    """A binary-mode CloudEvent, as Eventarc delivers a Cloud Storage finalize."""
    headers = {
        "ce-id": f"evt-{name}",
        "ce-specversion": "1.0",
        "ce-type": event_type,
        "ce-source": "//storage.googleapis.com/projects/_/buckets/estate-data",
        "ce-subject": f"objects/{name}",
        "ce-time": "2026-11-24T06:00:00Z",
        "Content-Type": "application/json",
    }
    data = {"bucket": "estate-data", "name": name, "generation": "1732428000123456"}
    return requests.post(url, data=json.dumps(data), headers=headers, timeout=30)


@pytest.fixture(scope="module")
def stub() -> Iterator[VertexStub]:
    with vertex_stub() as running:
        yield running


def retrain_env(stub: VertexStub) -> dict[str, str]:
    return {
        "ESTATE_RETRAIN_PROJECT": "estate-prod",
        "ESTATE_RETRAIN_REGION": "europe-west4",
        "ESTATE_RETRAIN_PREFIX": "incoming/",
        "ESTATE_RETRAIN_STAGING": "gs://estate-artifacts/vertex",
        "ESTATE_RETRAIN_IMAGE": IMAGE,
        "ESTATE_RETRAIN_SERVICE_ACCOUNT": "trainer@estate-prod.iam.gserviceaccount.com",
        "ESTATE_ARTIFACTS": "gs://estate-artifacts/estate",
        "ESTATE_VERTEX_ENDPOINT": stub.url,
    }


def test_new_data_file_submits_a_training_job(stub: VertexStub, tmp_path: Path) -> None:
    logs = tmp_path / "retrain.log"
    with serve_retrain(retrain_env(stub), logs) as url:
        before = len(stub.requests)
        assert finalize(url, "incoming/ames-2026-11.csv").status_code == 200
        sent = stub.requests[before:]
        assert len(sent) == 1
        ignored = [
            finalize(url, "archive/ames-2026-10.csv"),
            finalize(url, "incoming/notes.txt"),
            finalize(url, "incoming/x.csv", "google.cloud.storage.object.v1.deleted"),
        ]
        assert [r.status_code for r in ignored] == [200, 200, 200]
        assert len(stub.requests) == before + 1  # nothing else reached Vertex AI
    (job,) = sent
    assert job.path.split("?")[0] == "/v1/projects/estate-prod/locations/europe-west4/customJobs"
    pool = job.body["jobSpec"]["workerPoolSpecs"][0]
    assert pool["containerSpec"]["imageUri"] == IMAGE
    assert pool["containerSpec"]["command"] == ["estate"]
    assert pool["containerSpec"]["args"] == [
        "train",
        "--config",
        "configs/ames.toml",
        "--data",
        "gs://estate-data/incoming/ames-2026-11.csv",
        "--store",
        "gs://estate-artifacts/estate",
    ]
    assert job.body["labels"]["trigger"] == "gcs"
    assert job.body["labels"]["generation"] == "1732428000123456"
    assert job.body["jobSpec"]["serviceAccount"].startswith("trainer@")
    lines = [json.loads(x) for x in logs.read_text().splitlines() if x.startswith("{")]
    messages = [(x["severity"], x["message"]) for x in lines]
    assert (
        "NOTICE",
        "retrain: submitted projects/estate-prod/locations/europe-west4/customJobs/1234567890",
    ) in messages
    reasons = " ".join(m for s, m in messages if s == "INFO")
    assert "outside the watched prefix 'incoming/'" in reasons
    assert "is not a data file" in reasons
    assert "is not 'google.cloud.storage.object.v1.finalized'" in reasons


def test_unconfigured_retrain_logs_what_to_set(stub: VertexStub, tmp_path: Path) -> None:
    env = {**retrain_env(stub), "ESTATE_RETRAIN_IMAGE": "", "ESTATE_RETRAIN_PROJECT": ""}
    logs = tmp_path / "retrain.log"
    with serve_retrain(env, logs) as url:
        before = len(stub.requests)
        assert finalize(url, "incoming/ames.csv").status_code == 200
        assert len(stub.requests) == before
    text = logs.read_text()
    assert "not configured; set ESTATE_RETRAIN_PROJECT, ESTATE_RETRAIN_IMAGE" in text


def test_retrain_keeps_cold_starts_light(stub: VertexStub, ames_store: Path) -> None:
    """Loading main.py and serving predict never loads the Vertex client; handling a
    retrain event loads it but still no training library."""
    code = (
        "import json, sys\n"
        "from functions_framework import create_app\n"
        "c = create_app(target='predict', source='main.py').test_client()\n"
        "req = json.load(open('examples/predict_ames.json'))\n"
        "assert c.post('/', json=req).status_code == 200\n"
        "cold = [m for m in sys.modules if m.startswith(('google.cloud.aiplatform', "
        "'estate.training'))]\n"
        "r = create_app(target='retrain', source='main.py').test_client()\n"
        "h = {'ce-id': '1', 'ce-specversion': '1.0', 'ce-source': '//storage.googleapis.com/x',\n"
        "     'ce-type': 'google.cloud.storage.object.v1.finalized'}\n"
        "body = {'bucket': 'b', 'name': 'incoming/a.csv', 'generation': '1'}\n"
        "assert r.post('/', json=body, headers=h).status_code == 200\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'xgboost', 'pandas', 'skl2onnx', 'onnxmltools')]\n"
        "print(json.dumps({'cold': cold, 'heavy': heavy, "
        "'vertex': 'google.cloud.aiplatform_v1' in sys.modules}))\n"
    )
    env = {**os.environ, **retrain_env(stub), "ESTATE_ARTIFACTS": str(ames_store)}
    before = len(stub.requests)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"cold": [], "heavy": [], "vertex": True}
    assert len(stub.requests) == before + 1
