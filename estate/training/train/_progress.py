"""The job's progress lines, shared by every step."""

from __future__ import annotations

import time


class Progress:
    """Timestamped progress lines on stdout (Vertex AI and Cloud Logging capture them)."""

    def __init__(self, quiet: bool = False) -> None:
        self.start = time.perf_counter()
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", flush=True)
