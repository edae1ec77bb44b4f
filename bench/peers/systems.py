"""The systems `make bench-peers` measures: how each starts on a port and is spoken to.

Ours (`predict` under functions-framework), the two cold-start floors (`hello.py`,
`floor.py`) and the four peers, each in its own virtual environment under
``bench/.cache/peers/<name>/venv`` (`bench.peers.venvs` builds them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.models import Models
from bench.server import REPO, free_port, function_command

HERE = Path(__file__).resolve().parent
PEERS = ("kserve", "mlserver", "bentoml", "mlflow")
KEYS = ("predict", "hello", "floor", *PEERS)

Launch = tuple[list[str], dict[str, str]]  # argv and extra environment for one port


def say(message: str) -> None:
    """A progress line on stderr (stdout carries the table)."""
    print(f"[bench-peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class System:
    """One server under test: how to start it on a port and how to talk to it."""

    key: str
    label: str
    launch: Callable[[int], Launch]
    protocol: str = "instances"
    #: Batches in this form instead (ours: the columnar ``inputs``); the batch in
    #: `protocol` is then timed too, as ``batch_rows``.
    batch_protocol: str | None = None
    path: str = "/"
    venv: str | None = None  # bench/peers/requirements-<venv>.txt, None: the project's .venv
    cold_only: bool = False  # the two floors: cold start, memory and one-row latency only
    raw_log: bool = False  # answers are the pipeline's raw output (log price)
    packages: tuple[str, ...] = ()  # distributions whose versions the report records


@dataclass
class Context:
    """What every system's launch needs: the fitted pair, paths and settings."""

    models: Models
    args: argparse.Namespace
    root: Path  # bench/.cache/peers
    kinds: dict[str, str] = field(default_factory=dict)  # V2 datatype of each feature
    log_target: bool = False  # the pipeline predicts log price
    expected: list[float] = field(default_factory=list)  # its price for each holdout row

    def venv_bin(self, name: str, program: str) -> str:
        return str(self.root / name / "venv" / "bin" / program)

    def peer_env(self, name: str, **extra: str) -> dict[str, str]:
        """The venv as if activated, the repository importable (the pickled encoder's
        class) and the payload's path."""
        env = {
            "PATH": f"{self.root / name / 'venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.root / name / "venv"),
            "PYTHONPATH": str(REPO),
            "MODEL_PATH": str(self.models.joblib_path.resolve()),
            "TMPDIR": self.args.tmpdir,
            **extra,
        }
        if self.args.peer_omp_threads:
            # The pipeline's XGBoost was fitted with n_jobs=-1 (every core) and reads this.
            env["OMP_NUM_THREADS"] = str(self.args.peer_omp_threads)
        return env


def systems(ctx: Context) -> list[System]:
    """Ours, the two floors, then the four peers, in the table's column order."""
    args = ctx.args
    ours_env = {
        "ESTATE_ARTIFACTS": str(ctx.models.artifacts),
        "ESTATE_MODEL_NAME": ctx.models.name,
        "ESTATE_ORT_THREADS": str(args.ort_threads),
        "ESTATE_ORT_BATCH_THREADS": str(args.ort_batch_threads),
        "WORKERS": "1",
        "THREADS": str(args.threads),
        "TMPDIR": args.tmpdir,  # gunicorn's worker heartbeat file lives here
    }
    hello_env = {k: ours_env[k] for k in ("WORKERS", "THREADS", "TMPDIR")}
    floor_env = {k: ours_env[k] for k in ("ESTATE_ARTIFACTS", "ESTATE_MODEL_NAME", *hello_env)}

    def function(name: str, env: dict[str, str]) -> Callable[[int], Launch]:
        """bench/peers/<name>.py's function `name`, started as ours is."""
        return lambda port: (function_command(name, port, f"bench/peers/{name}.py"), env)

    def kserve(port: int) -> Launch:
        argv = [ctx.venv_bin("kserve", "python"), str(HERE / "kserve_server.py")]
        argv += ["--model_name", ctx.models.name, "--http_port", str(port)]
        argv += ["--grpc_port", str(free_port()), "--workers", "1"]
        return argv, ctx.peer_env("kserve")

    def mlserver(port: int) -> Launch:
        base = ctx.root / "mlserver"
        env = ctx.peer_env(
            "mlserver",
            MLSERVER_HTTP_PORT=str(port),
            MLSERVER_GRPC_PORT=str(free_port()),
            MLSERVER_METRICS_PORT=str(free_port()),
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_PARALLEL_WORKERS="1",
            MLSERVER_DEBUG="false",  # its default (true) logs every request
            MLSERVER_METRICS_DIR=str(base / "metrics"),
            MLSERVER_ENVIRONMENTS_DIR=str(base / "envs"),
        )
        return [ctx.venv_bin("mlserver", "mlserver"), "start", str(base / "models")], env

    def bentoml(port: int) -> Launch:
        argv = [ctx.venv_bin("bentoml", "bentoml"), "serve", "bench.peers.bento_service:Ames"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        home = str(ctx.root / "bentoml" / "home")
        return argv, ctx.peer_env("bentoml", BENTOML_HOME=home, BENTOML_DO_NOT_TRACK="True")

    def mlflow(port: int) -> Launch:
        argv = [ctx.venv_bin("mlflow", "mlflow"), "models", "serve"]
        argv += ["-m", str(ctx.root / "mlflow" / "model"), "--env-manager", "local"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        return argv, ctx.peer_env("mlflow", MLFLOW_TRACKING_URI=str(ctx.root / "mlflow" / "mlruns"))

    core = ("scikit-learn", "xgboost-cpu", "numpy", "pandas", "pydantic")
    return [
        System(
            "predict",
            "estate-advisor predict (ONNX, functions-framework)",
            lambda port: (function_command("predict", port), ours_env),
            batch_protocol="columns",
            packages=("functions-framework", "gunicorn", "onnxruntime", "numpy", "pydantic"),
        ),
        System(
            "hello",
            "functions-framework hello world",
            function("hello", hello_env),
            cold_only=True,
            packages=("functions-framework",),
        ),
        System(
            "floor",
            "functions-framework + numpy + onnxruntime, one session, no estate code",
            function("floor", floor_env),
            cold_only=True,
            packages=("functions-framework", "onnxruntime", "numpy"),
        ),
        System(
            "kserve",
            "KServe ModelServer (v1 protocol)",
            kserve,
            path=f"/v1/models/{ctx.models.name}:predict",
            venv="kserve",
            packages=("kserve", "fastapi", "uvicorn", *core),
        ),
        System(
            "mlserver",
            "Seldon MLServer (sklearn runtime, V2 protocol)",
            mlserver,
            protocol="v2",
            path=f"/v2/models/{ctx.models.name}/infer",
            venv="mlserver",
            raw_log=ctx.log_target,
            packages=("mlserver", "mlserver-sklearn", "fastapi", "uvicorn", *core),
        ),
        System(
            "bentoml",
            "BentoML service",
            bentoml,
            protocol="bentoml",
            path="/predict",
            venv="bentoml",
            packages=("bentoml", "starlette", "uvicorn", *core),
        ),
        System(
            "mlflow",
            "MLflow models serve (sklearn flavour)",
            mlflow,
            protocol="mlflow",
            path="/invocations",
            venv="mlflow",
            raw_log=ctx.log_target,
            packages=("mlflow", "mlflow-skinny", "fastapi", "uvicorn", *core),
        ),
    ]
