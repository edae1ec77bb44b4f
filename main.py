"""Cloud Functions entry points: one source folder, one function per entry point.

functions-framework --source main.py --target predict --port 8080
functions-framework --source main.py --target explain --port 8081
functions-framework --source main.py --target chat --port 8082
functions-framework --source main.py --target analyze --port 8084
functions-framework --source main.py --target retrain --port 8083   (CloudEvent)

Each entry point is built on first use (PEP 562 ``__getattr__``): functions-framework's
``getattr(main, target)`` imports only that function's module and reads only its
settings, so ``predict`` never loads chat's advisor nor ``retrain``'s job builder.
"""

import importlib
from collections.abc import Callable
from typing import Any

from estate.serving.bodies import install_body_guard

#: Entry point → the module whose ``entry_point()`` builds it.
ENTRY_MODULES = {
    "analyze": "estate.serving.analyze",
    "chat": "estate.serving.chat.entry",
    "explain": "estate.serving.explain",
    "predict": "estate.serving.predict",
    "retrain": "estate.serving.retrain",
}

install_body_guard()  # bound every request body's size and read time (estate/serving/bodies.py)

__all__ = ["analyze", "chat", "explain", "predict", "retrain"]  # noqa: F822 (built by __getattr__)


def __getattr__(name: str) -> Callable[..., Any]:
    """Import the module of entry point `name`, build it with its settings, keep it."""
    if name not in ENTRY_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function: Callable[..., Any] = importlib.import_module(ENTRY_MODULES[name]).entry_point()
    globals()[name] = function
    return function


def __dir__() -> list[str]:
    """The entry points too, so a wrong ``--target`` is answered with their names."""
    return sorted({*globals(), *__all__})
