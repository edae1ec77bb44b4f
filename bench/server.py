"""Start a real HTTP server process, wait for its first good answer, read its memory.

Shared by `make bench` and the hostile-input and fault test tiers, so all of them
exercise the production path: functions-framework's gunicorn server (``WORKERS`` and
``THREADS`` from the environment) on a free loopback port, or any other command line
(the FastAPI baseline). Server output goes to a file, never an undrained pipe.
"""

from __future__ import annotations

import compileall
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent


class ServerError(RuntimeError):
    """The server exited or never answered; the message carries its log tail."""


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def compile_sources() -> None:
    """Byte-compile main.py and estate/ before a function starts, as a deployed image
    holds them: with ``PYTHONDONTWRITEBYTECODE`` set (as on the bench machine) an editable
    install never caches its bytecode, so every cold start also compiled ~40 modules from
    source (~120 ms of CPU), while every peer's site-packages was compiled by pip.
    Idempotent: unchanged files are only stat'ed."""
    compileall.compile_file(REPO / "main.py", quiet=1)
    compileall.compile_dir(REPO / "estate", quiet=1)


def function_command(target: str, port: int, source: str = "main.py") -> list[str]:
    """functions-framework as Cloud Functions runs it: gunicorn, not the debug server,
    on byte-compiled sources (`compile_sources`); `source` relative to the repository."""
    compile_sources()
    return [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        source,
        "--target",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@dataclass
class Server:
    """A running server process and what it took to get its first good answer."""

    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    started: float  # time.perf_counter() just before Popen
    first_answer: float = float("nan")  # seconds from Popen to the first good answer
    first_headers: dict[str, str] = field(default_factory=dict)
    path: str = "/"  # where requests go (model servers answer on /v1/models/..., not /)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]

    def rss_bytes(self) -> int:
        """Resident memory of the server and its children (gunicorn master + workers)."""
        return sum(_status_kb(pid, "VmRSS") for pid in process_tree(self.proc.pid)) * 1024

    def peak_rss_bytes(self) -> int:
        """Sum of each process's peak resident memory (VmHWM) so far."""
        return sum(_status_kb(pid, "VmHWM") for pid in process_tree(self.proc.pid)) * 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and its children: the work
        it does per request, which a shared host's scheduling delays do not inflate as
        much as they do latency."""
        return sum(_cpu_ticks(pid) for pid in process_tree(self.proc.pid)) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14 and 15)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def request(
    port: int,
    method: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    path: str = "/",
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def wait_for_answer(
    server: Server, body: bytes | None, want_ok: bool, deadline_s: float = 60.0
) -> tuple[int, dict[str, str], bytes]:
    """Poll until the server answers (a 200 if `want_ok`); POST `body`, or GET if None."""
    deadline = time.perf_counter() + deadline_s
    method = "GET" if body is None else "POST"
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        if not server.alive():
            raise ServerError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            status, hdrs, data = request(
                server.port, method, body, headers, timeout=30, path=server.path
            )
        except OSError:
            time.sleep(0.005)
            continue
        if status == 200 or not want_ok:
            return status, hdrs, data
        time.sleep(0.05)
    raise ServerError(
        f"no {'200 ' if want_ok else ''}answer in {deadline_s} s:\n{server.log_tail()}"
    )


@contextmanager
def run_server(
    command: list[str],
    port: int,
    env: Mapping[str, str],
    *,
    ready_body: Any = None,
    want_ok: bool = True,
    path: str = "/",
    deadline_s: float = 60.0,
) -> Iterator[Server]:
    """Start `command`, wait for its first answer, yield it; always stop it after.

    The first answer is a POST of `ready_body` (JSON) to `path`, or a GET when it is
    None; with `want_ok` only a 200 counts. `Server.first_answer` is the cold start.
    """
    with tempfile.TemporaryFile(prefix="server-log-") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: a stop reaches gunicorn's workers
        )
        server = Server(proc, port, log, started, path=path)
        try:
            payload = None if ready_body is None else json.dumps(ready_body).encode()
            _, headers, _ = wait_for_answer(server, payload, want_ok, deadline_s)
            server.first_answer = time.perf_counter() - started
            server.first_headers = headers
            yield server
        finally:
            stop(server)


def stop(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL if it lingers."""
    if server.proc.poll() is None:
        try:
            os.killpg(server.proc.pid, 15)
            server.proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            kill(server)
    server.proc.wait(timeout=timeout)


def kill(server: Server) -> None:
    """SIGKILL the whole process group at once: an instance dying mid-request."""
    try:
        os.killpg(server.proc.pid, 9)
    except ProcessLookupError:
        return


@contextmanager
def run_function(
    target: str,
    artifacts: str | Path,
    model: str = "ames",
    *,
    ready_body: Any = None,
    want_ok: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """One estate-advisor function under functions-framework's production server."""
    port = free_port()
    env = {
        "ESTATE_ARTIFACTS": str(artifacts),
        "ESTATE_MODEL_NAME": model,
        **(extra_env or {}),
    }
    with run_server(
        function_command(target, port), port, env, ready_body=ready_body, want_ok=want_ok
    ) as server:
        yield server
