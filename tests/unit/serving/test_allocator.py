"""main.py caps glibc's malloc arenas before any request thread exists (memory after batches)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from estate.serving.allocator import limit_malloc_arenas


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_cap_when_main_is_imported() -> None:
    code = (
        "import os; os.environ.pop('MALLOC_ARENA_MAX', None)\n"
        "from estate.serving.allocator import limit_malloc_arenas\n"
        "assert limit_malloc_arenas(1) is True\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
