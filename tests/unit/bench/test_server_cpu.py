"""`bench.server.Server.cpu_seconds`: the CPU a server and its children used, from /proc,
which the peers table divides by the one-row requests it answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.server import Server

# A parent that idles while its child burns about 0.4 s of CPU, then both wait.
_BUSY_CHILD = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', "
    "'import time\\nend = time.process_time() + 0.4\\nwhile time.process_time() < end: pass\\n"
    "time.sleep(30)']); time.sleep(30)"
)


def test_counts_the_cpu_of_the_whole_process_tree() -> None:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BUSY_CHILD], stdout=log, stderr=log, start_new_session=True
        )
        server = Server(proc, 0, log, time.perf_counter())
        try:
            before = server.cpu_seconds()
            used, deadline = 0.0, time.monotonic() + 20
            while time.monotonic() < deadline:  # until the child has burnt and sleeps
                time.sleep(0.2)
                now = server.cpu_seconds() - before
                if now >= 0.4 and now == used:
                    break
                used = now
            time.sleep(0.3)
            idle = server.cpu_seconds() - before - used
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert 0.4 <= used < 1.5
    assert idle < 0.02  # a sleeping tree uses none
