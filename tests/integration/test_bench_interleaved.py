"""`bench.peers.measure.interleaved_one_row`: every system up at once, one-row blocks in
turns, each system's figures over all of its blocks (real gunicorn servers on loopback)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.models import Models
from bench.peers.measure import interleaved_one_row
from bench.peers.systems import Context, System
from bench.server import function_command

pytestmark = pytest.mark.slow


def _hello(key: str) -> System:
    env = {"WORKERS": "1", "THREADS": "2", "TMPDIR": "/dev/shm"}
    return System(
        key,
        "functions-framework hello world",
        lambda port: (function_command("hello", port, "bench/peers/hello.py"), env),
        cold_only=True,
    )


def test_blocks_take_turns_and_every_server_stops(tmp_path: Path) -> None:
    models = Models(tmp_path, tmp_path / "pipeline.joblib", "ames", "v1", "blend", [{"x": 1}])
    args = argparse.Namespace(ready_timeout=60.0, warmup=4)
    ctx = Context(models=models, args=args, root=tmp_path)

    figures = interleaved_one_row(ctx, [_hello("a"), _hello("b")], rounds=3, block=7)

    assert set(figures) == {"a", "b"}
    for summary in figures.values():
        assert summary["requests"] == 21  # 3 rounds x 7
        assert summary["errors"] == 0
        assert len(summary["round_p50_ms"]) == 3
        assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert not _serving_hello()  # both servers and their workers are gone


def _serving_hello() -> list[str]:
    """Command lines of live processes serving bench/peers/hello.py (only this test's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bench/peers/hello.py" in argv and (entry / "stat").read_text().split()[2] != "Z":
            found.append(b" ".join(argv).decode(errors="replace"))
    return found
