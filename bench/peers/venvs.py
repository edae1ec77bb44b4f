"""The peers' virtual environments and model folders, built once and rebuilt when stale,
and the package versions each system runs (read in its own environment)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib

from bench.peers.systems import HERE, Context, System, say
from bench.server import REPO


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_logged(argv: Sequence[str], log: Path, what: str) -> None:
    """Run a set-up command with its output in `log`; a failure names the log's tail."""
    with log.open("ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}); full log in {log}:\n{tail}")


def ensure_venv(root: Path, name: str) -> Path:
    """The peer's venv, (re)built when its requirements file changed since the last build."""
    requirements = HERE / f"requirements-{name}.txt"
    venv = root / name / "venv"
    stamp = venv / ".requirements.sha256"
    digest = _digest(requirements)
    if stamp.is_file() and stamp.read_text() == digest:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "install.log"
    log.unlink(missing_ok=True)
    rel = requirements.relative_to(REPO)
    say(f"installing {name} into {venv} from {rel} (first run only, 1-4 min) …")
    started = time.perf_counter()
    _run_logged([sys.executable, "-m", "venv", str(venv)], log, f"creating {venv}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _run_logged([*pip, "--no-input", "-r", str(requirements)], log, f"installing {rel}")
    stamp.write_text(digest)
    say(f"{name} installed in {time.perf_counter() - started:.0f} s")
    return venv


def _fresh(target: Path, source: Path) -> bool:
    return target.exists() and target.stat().st_mtime >= source.stat().st_mtime


def prepare(ctx: Context, system: System) -> None:
    """The venv and any model folder the peer reads, rebuilt when the fitted pair is newer."""
    if system.venv is None:
        return
    ensure_venv(ctx.root, system.venv)
    source = ctx.models.joblib_path
    if system.key == "mlserver":
        models = ctx.root / "mlserver" / "models" / ctx.models.name
        if not _fresh(models / "model.joblib", source):
            models.mkdir(parents=True, exist_ok=True)
            # The stock sklearn runtime wants the estimator itself, not the baseline's dict.
            joblib.dump(joblib.load(source)["pipeline"], models / "model.joblib")
            settings = {
                "name": ctx.models.name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
            (models / "model-settings.json").write_text(json.dumps(settings, indent=2))
    if system.key == "mlflow":
        model = ctx.root / "mlflow" / "model"
        if not _fresh(model / "MLmodel", source):
            shutil.rmtree(model, ignore_errors=True)
            say("saving the pipeline as an MLflow model …")
            argv = [ctx.venv_bin("mlflow", "python"), str(HERE / "mlflow_save.py")]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            done = subprocess.run(
                [*argv, str(source), str(model)], env=env, capture_output=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"mlflow_save.py failed:\n{done.stderr.decode()[-3000:]}")


def versions(ctx: Context, system: System) -> dict[str, str]:
    """Installed versions of the system's packages, read in its own environment."""
    if system.venv is None:
        out = {}
        for name in system.packages:
            try:
                out[name] = version(name)
            except PackageNotFoundError:
                out[name] = "not installed"
        return out
    code = (
        "import json, sys\nfrom importlib.metadata import version\nout = {}\n"
        "for n in sys.argv[1:]:\n    try: out[n] = version(n)\n"
        "    except Exception: out[n] = 'not installed'\nprint(json.dumps(out))"
    )
    argv = [ctx.venv_bin(system.venv, "python"), "-c", code, *system.packages]
    found: dict[str, str] = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    return found
