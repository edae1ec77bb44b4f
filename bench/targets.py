"""The HTTP functions the bench, hostile-input and fault harnesses exercise.

Adding a function to all three is one `Target` entry in `TARGETS`: its
functions-framework entry point and a file holding one valid request body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """One Cloud Function: how to start it and one request it must answer with 200."""

    name: str  # functions-framework --target in main.py
    example: str  # repo-relative JSON file with a valid one-instance body
    batch_key: str = "instances"  # list field a batch request repeats

    def body(self) -> dict[str, Any]:
        """The example request body (a fresh copy each call)."""
        loaded: dict[str, Any] = json.loads((REPO / self.example).read_text())
        return loaded

    def instance(self) -> dict[str, Any]:
        """The example's first instance: the seed the hostile generators mutate."""
        first: dict[str, Any] = self.body()[self.batch_key][0]
        return first


#: Every function that answers {"instances": [...]} requests (explain takes predict's body).
TARGETS: list[Target] = [
    Target("predict", "examples/predict_ames.json"),
    Target("explain", "examples/predict_ames.json"),
]


def target(name: str) -> Target:
    """The target called `name`, or a clear error listing the known ones."""
    for t in TARGETS:
        if t.name == name:
            return t
    known = ", ".join(t.name for t in TARGETS)
    raise KeyError(f"unknown function {name!r}; known: {known}")
