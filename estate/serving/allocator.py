"""One malloc arena for the whole process, set before any request thread exists.

glibc gives each thread that allocates its own arena (up to 8 per core) and keeps the
memory freed in it. gunicorn's threaded worker answers requests on a pool of threads, so
each of them that once held a 1,000-row batch (its JSON, rows, arrays, answer) kept that
memory: the worker grew from ~101 to ~169 MiB after ten batches and stayed there. With
one arena the same load leaves it at ~112 MiB, at the same speed (the GIL serialises the
allocating Python code anyway; bench/README.md, "Memory after batches").

``MALLOC_ARENA_MAX`` in the environment wins (glibc reads it itself); on a C library
without ``mallopt`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's mallopt parameter number for the arena limit (malloc.h).
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas at `arenas` (True when set). Call it before threads start."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
