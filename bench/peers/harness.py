"""`make bench-peers`: our `predict` against KServe, MLServer, BentoML and MLflow.

    python -m bench.peers [--only kserve,mlflow] [--cold-runs 5] [--requests 1000]

Every peer serves the fitted scikit-learn pipeline the FastAPI baseline unpickles
(`bench.models`: encoder + model, ``bench/.cache/baseline.joblib``) with one worker,
from its own virtual environment under ``bench/.cache/peers/<name>/venv`` built on the
first run from ``bench/peers/requirements-<name>.txt`` (their pins clash with ours and
with each other). Our `predict` serves the ONNX bundle exported from the very same
fitted object, under functions-framework as `bench.serving` starts it. Two floors for
cold start and memory: a functions-framework hello world (the framework's), and
`bench.peers.floor`, a function that imports numpy and onnxruntime and answers from one
session on the same graph with nothing else (the libraries'); ours above the second floor
is our own code.

For each system, with the `bench.serving` harness (`bench.server`, `bench.load`): cold
start (process start → first 200 to a real request, median of ``--cold-runs`` fresh
processes), peak RSS, one-row p50/p99 at concurrency 1 and 8, and 1,000-row batches
(p50, rows/s), each server in its own request format (`bench.peers.protocols`). Every
answer's prices are checked against the pipeline's own. Prints one table with the ratio
of ours to the fastest peer on each row and writes ``bench/peers_results.json``.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib

from bench.load import hammer
from bench.models import Models, baseline_predict, ensure_models
from bench.onnx_latency import machine
from bench.peers import protocols
from bench.report import _better, _fmt, _get, write_report
from bench.server import (
    REPO,
    Server,
    ServerError,
    free_port,
    function_command,
    process_tree,
    request,
    run_server,
)

HERE = Path(__file__).resolve().parent
BATCH = 1000
JSON = {"Content-Type": "application/json"}
PEERS = ("kserve", "mlserver", "bentoml", "mlflow")
KEYS = ("predict", "hello", "floor", *PEERS)
AGREE = 1e-3  # largest relative price difference that still counts as the same model

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
    cold_only: bool = False  # the two floors: cold start and memory only
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
        def launch(port: int) -> Launch:
            argv = [sys.executable, "-m", "functions_framework"]
            argv += ["--source", f"bench/peers/{name}.py", "--target", name]
            return [*argv, "--host", "127.0.0.1", "--port", str(port)], env

        return launch

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


def reap(server: Server, timeout: float = 10.0) -> None:
    """Make sure nothing of the server's process group outlives it (workers, supervisors)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(server.proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(server.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def agreement(system: System, status: int, answer: bytes, want: Sequence[float]) -> float:
    """Largest relative difference between the answer's prices and the pipeline's own."""
    if status != 200:
        raise ServerError(f"{system.key} answered {status} to a valid request: {answer[:500]!r}")
    try:
        got = protocols.prices(system.protocol, answer, system.raw_log)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(
            f"{system.key}'s answer holds no prices ({exc}): {answer[:500]!r}"
        ) from exc
    if len(got) != len(want):
        raise ServerError(f"{system.key} answered {len(got)} prices for {len(want)} rows")
    return max(abs(g - w) / abs(w) for g, w in zip(got, want, strict=True))


def cold_starts(ctx: Context, system: System) -> dict[str, Any]:
    """Fresh processes: seconds from Popen to the first 200, and peak RSS right then."""
    rows = ctx.models.rows
    ready = protocols.body(system.protocol, rows[:1], ctx.kinds)
    seconds, peaks = [], []
    for run in range(ctx.args.cold_runs):
        port = free_port()
        argv, env = system.launch(port)
        with run_server(
            argv, port, env, ready_body=ready, path=system.path, deadline_s=ctx.args.ready_timeout
        ) as server:
            seconds.append(server.first_answer)
            peaks.append(server.peak_rss_bytes())
        reap(server)
        say(f"  {system.key} cold start {run + 1}/{ctx.args.cold_runs}: {seconds[-1]:.3f} s")
    return {
        "runs": len(seconds),
        "median_s": round(statistics.median(seconds), 3),
        "all_s": [round(s, 3) for s in seconds],
        "peak_rss_mib": round(statistics.median(peaks) / 2**20, 1),
    }


def warm_figures(ctx: Context, system: System) -> dict[str, Any]:
    """Latency and batch figures from one warm server process, answers checked first."""
    args, rows = ctx.args, ctx.models.rows
    n = len(rows)
    singles = [protocols.encode(system.protocol, [r], ctx.kinds) for r in rows]
    big = [rows[i % n] for i in range(BATCH)]
    batch = protocols.encode(system.protocol, big, ctx.kinds)
    port = free_port()
    argv, env = system.launch(port)
    ready = protocols.body(system.protocol, rows[:1], ctx.kinds)
    path = system.path
    with run_server(
        argv, port, env, ready_body=ready, path=path, deadline_s=args.ready_timeout
    ) as server:
        hammer(port, singles, 2, total=args.warmup, path=path)
        status_one, _, one = request(port, "POST", singles[0], JSON, path=path)
        status_many, _, many = request(port, "POST", batch, JSON, timeout=120, path=path)
        diff = max(
            agreement(system, status_one, one, ctx.expected[:1]),
            agreement(system, status_many, many, [ctx.expected[i % n] for i in range(BATCH)]),
        )
        first = protocols.prices(system.protocol, one, system.raw_log)[0]
        figures: dict[str, Any] = {
            "answers": {
                "first_row_price": round(first, 2),
                "max_relative_difference": diff,
                "agrees": diff <= AGREE,
                "single_body_bytes": len(singles[0]),
                "batch_body_bytes": len(batch),
            }
        }
        if diff > AGREE:
            say(f"  WARNING: {system.key} prices differ from the pipeline's by up to {diff:.2e}")
        say(f"  {system.key}: {args.requests} one-row requests at concurrency 1 …")
        figures["c1"] = hammer(port, singles, 1, total=args.requests, path=path).summary()
        say(f"  {system.key}: {args.requests_c8} one-row requests at concurrency 8 …")
        figures["c8"] = hammer(port, singles, 8, total=args.requests_c8, path=path).summary()
        say(f"  {system.key}: {args.batch_repeats} batches of {BATCH} rows …")
        run = hammer(port, [batch], 1, total=args.batch_repeats, timeout=120, path=path)
        figures["batch"] = _batch_figures(run.summary(BATCH), len(batch))
        figures["batch_rows"] = figures["batch"]  # a peer's batch is in its own form
        if system.batch_protocol is not None:
            columns = protocols.encode(system.batch_protocol, big, ctx.kinds)
            status_cols, _, by_cols = request(port, "POST", columns, JSON, timeout=120, path=path)
            diff = agreement(
                system, status_cols, by_cols, [ctx.expected[i % n] for i in range(BATCH)]
            )
            figures["answers"]["columnar_max_relative_difference"] = diff
            figures["answers"]["agrees"] &= diff <= AGREE
            say(f"  {system.key}: {args.batch_repeats} batches of {BATCH} rows, columnar …")
            run = hammer(port, [columns], 1, total=args.batch_repeats, timeout=120, path=path)
            figures["batch"] = _batch_figures(run.summary(BATCH), len(columns))
        figures["after_load"] = {
            "peak_rss_mib": round(server.peak_rss_bytes() / 2**20, 1),
            "rss_mib": round(server.rss_bytes() / 2**20, 1),
            "processes": len(process_tree(server.proc.pid)),
            "alive": server.alive(),
        }
    reap(server)
    return figures


def _batch_figures(summary: dict[str, Any], body_bytes: int) -> dict[str, Any]:
    p50 = summary["p50_ms"]
    rate = round(BATCH / (p50 / 1e3), 1) if p50 else None
    return {**summary, "rows": BATCH, "body_bytes": body_bytes, "rows_per_s_at_p50": rate}


# (label, path into a system's figures, unit, lower is better)
METRICS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("cold start, process → first 200 (median)", ("cold_start", "median_s"), "s", True),
    ("peak RSS after the first answer", ("cold_start", "peak_rss_mib"), "MiB", True),
    ("peak RSS after all the load below", ("after_load", "peak_rss_mib"), "MiB", True),
    ("1 row, concurrency 1, p50", ("c1", "p50_ms"), "ms", True),
    ("1 row, concurrency 1, p99", ("c1", "p99_ms"), "ms", True),
    ("1 row, concurrency 8, p50", ("c8", "p50_ms"), "ms", True),
    ("1 row, concurrency 8, p99", ("c8", "p99_ms"), "ms", True),
    ("1 row, concurrency 8, throughput", ("c8", "requests_per_s"), "req/s", False),
    ("1,000-row batch, p50 (ours: columnar inputs)", ("batch", "p50_ms"), "ms", True),
    ("1,000-row batch, rows/s at p50", ("batch", "rows_per_s_at_p50"), "rows/s", False),
    ("1,000-row batch, p50 (ours: row objects)", ("batch_rows", "p50_ms"), "ms", True),
]


def best_peers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric: the fastest peer, its figure, and how many times better ours is.

    Above 1 ours wins (best peer ÷ ours for times and memory, ours ÷ best peer for
    rates). Only peers that answered the row count; ours or no peer: no ratio.
    """
    figures = report["systems"]
    ours = figures.get("predict", {})
    out: dict[str, dict[str, Any]] = {}
    for label, path, _, lower in METRICS:
        scored = [
            (value, key)
            for key in PEERS
            if isinstance(value := _get(figures.get(key, {}), path), int | float)
        ]
        if not scored:
            out[label] = {"peer": None, "value": None, "ours_better_by": None}
            continue
        value, key = min(scored) if lower else max(scored)
        out[label] = {
            "peer": key,
            "value": value,
            "ours_better_by": _better(_get(ours, path), value, lower),
        }
    return out


def _times(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _gist(error: str) -> str:
    """The first line of a failure and the last line of its log naming an error."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "Exception" in line]
    return " … ".join(dict.fromkeys([*lines[:1], *named[-1:]]))


def render(report: dict[str, Any]) -> str:
    """One Markdown table: every system side by side, then ours against the best peer."""
    figures = report["systems"]
    keys = [k for k in KEYS if k in figures]
    m = report["machine"]
    lines = [
        f"{report['date']} · {m['cpu']} ({m['cores']} cores) · Python {m['python']} · "
        f"load average {report['load_average']['start']} → {report['load_average']['end']} · "
        f"model {report['model']['name']} {report['model']['version']} "
        f"({report['model']['chosen']})",
        "",
        "| metric | unit | " + " | ".join(keys) + " | best peer | ours better by |",
        "|---|---|" + "---:|" * len(keys) + "---|---:|",
    ]
    for label, path, unit, _ in METRICS:
        cells = [_fmt(_get(figures[k], path)) for k in keys]
        best = report["best_peer"][label]
        times = best["ours_better_by"]
        lines.append(
            f"| {label} | {unit} | " + " | ".join(cells) + f" | {best['peer'] or '-'} "
            f"| {_times(times)} |"
        )
    for key, entry in figures.items():
        if "error" in entry:
            lines.append(f"\n{key} failed: {_gist(entry['error'])} (whole log in the JSON)")
    disagree = [k for k in keys if _get(figures[k], ("answers", "agrees")) is False]
    if disagree:
        lines.append(f"\nprices differ from the pipeline's beyond {AGREE:.0e}: {disagree}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="configs/ames.toml")
    p.add_argument("--source", default="./artifacts", help="store whose chosen model to fit")
    p.add_argument("--cache", default="bench/.cache", help="the fitted pair (bench.models)")
    p.add_argument(
        "--refit", action="store_true", help="fit the pair again (keeps the peers' venvs)"
    )
    p.add_argument(
        "--only",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        help=f"comma-separated systems to run, of: {','.join(KEYS)} (default: all)",
    )
    p.add_argument("--cold-runs", type=int, default=5, help="fresh processes per system")
    p.add_argument("--requests", type=int, default=1000, help="one-row requests at concurrency 1")
    p.add_argument(
        "--requests-c8", type=int, default=None, help="at concurrency 8 (default: 2 x --requests)"
    )
    p.add_argument("--batch-repeats", type=int, default=10, help="timed 1,000-row batches")
    p.add_argument("--warmup", type=int, default=200, help="untimed one-row requests first")
    p.add_argument("--threads", type=int, default=8, help="gunicorn THREADS for ours (WORKERS=1)")
    p.add_argument("--ort-threads", type=int, default=1, help="ESTATE_ORT_THREADS for ours")
    p.add_argument(
        "--ort-batch-threads",
        type=int,
        default=2,
        help="ESTATE_ORT_BATCH_THREADS for ours (the peers' XGBoost uses every core)",
    )
    p.add_argument("--tmpdir", default="/dev/shm", help="TMPDIR of every server (see README)")
    p.add_argument(
        "--peer-omp-threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the peers (default: unset, XGBoost uses every core)",
    )
    p.add_argument("--ready-timeout", type=float, default=180.0, help="s to the first answer")
    p.add_argument("--out", default="bench/peers_results.json")
    args = p.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(KEYS))
    if unknown:
        p.error(f"unknown system(s) {unknown} in --only; choose from {','.join(KEYS)}")
    if args.requests_c8 is None:
        args.requests_c8 = 2 * args.requests
    return args


def context(args: argparse.Namespace) -> Context:
    """Fit (or reuse) the pair, and what the answers must be: the pipeline's own prices."""
    cache = Path(args.cache)
    root = cache.resolve() / "peers"
    if args.refit and root.is_dir():
        # bench.models empties the whole cache to refit: keep the venvs (minutes to build).
        aside = cache.resolve().with_name(cache.name + ".peers-aside")
        shutil.rmtree(aside, ignore_errors=True)
        root.rename(aside)
        try:
            models = ensure_models(args.config, args.source, cache, refit=True)
        finally:
            aside.rename(root)
    else:
        models = ensure_models(args.config, args.source, cache, refit=args.refit)
    try:
        payload = joblib.load(models.joblib_path)
    except (ModuleNotFoundError, AttributeError) as exc:
        sys.exit(f"error: {models.joblib_path} was pickled by older code ({exc}); run with --refit")
    expected = baseline_predict(payload, models.rows)
    return Context(
        models=models,
        args=args,
        root=root,
        kinds=protocols.column_kinds(models.rows, payload["features"]),
        log_target=bool(payload["log_target"]),
        expected=[float(v) for v in expected],
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = context(args)
    settings = {
        k: getattr(args, k)
        for k in ("cold_runs", "requests", "requests_c8", "batch_repeats", "warmup")
    }
    settings.update(
        threads=args.threads,
        ort_threads=args.ort_threads,
        ort_batch_threads=args.ort_batch_threads,
        tmpdir=args.tmpdir,
    )
    settings["peer_omp_threads"] = args.peer_omp_threads
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "platform": platform.platform()},
        "load_average": {"start": round(os.getloadavg()[0], 2)},
        "model": {
            "name": ctx.models.name,
            "version": ctx.models.version,
            "chosen": ctx.models.chosen,
            "holdout_rows": len(ctx.models.rows),
        },
        "settings": settings,
        "systems": {},
    }
    for system in systems(ctx):
        if args.only and system.key not in args.only:
            continue
        entry: dict[str, Any] = {"label": system.label, "protocol": system.protocol}
        entry["path"] = system.path
        report["systems"][system.key] = entry
        try:
            prepare(ctx, system)
            entry["versions"] = versions(ctx, system)
            load = round(os.getloadavg()[0], 2)
            say(f"measuring {system.label} (load average {load}) …")
            entry["load_average_start"] = load
            entry["cold_start"] = cold_starts(ctx, system)
            if not system.cold_only:
                entry.update(warm_figures(ctx, system))
            entry["load_average_end"] = round(os.getloadavg()[0], 2)
        except (ServerError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            entry["error"] = str(exc)
            say(f"{system.key} FAILED: {exc}")
    report["load_average"]["end"] = round(os.getloadavg()[0], 2)
    report["best_peer"] = best_peers(report)
    print(render(report))
    write_report(report, args.out)
    return 1 if any("error" in v for v in report["systems"].values()) else 0
