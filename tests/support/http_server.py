"""A real functions-framework server for one target on a free localhost port (tests only).

Shared by the HTTP, OpenAPI and web-page tests; `bench/server.py` is the heavier harness the
hostile and fault tiers use.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(artifacts: Path, model: str, target: str = "predict") -> Iterator[str]:
    """Run functions-framework's `target` on a free port; yield its URL once it answers."""
    port = free_port()
    env = {**os.environ, "ESTATE_ARTIFACTS": str(artifacts), "ESTATE_MODEL_NAME": model}
    command = [sys.executable, "-m", "functions_framework", "--source", "main.py"]
    command += ["--target", target, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up, or still loading
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"server exited: {err}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
