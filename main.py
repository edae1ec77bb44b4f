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

import gc
import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# pydantic looks for plugins in every installed distribution's entry points on the first
# model it builds (~10 ms of a cold start); these functions use none. An explicit value wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@contextmanager
def _building() -> Iterator[None]:
    """The cyclic GC paused while modules and schemas are built (all long-lived: ~8 % of
    the import time went to collections that found nothing), then those objects frozen
    out of every later collection, so a request's full collection does not walk them."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if paused:
            gc.enable()


with _building():
    from estate.serving.allocator import limit_malloc_arenas
    from estate.serving.bodies import install_body_guard

#: Entry point → the module whose ``entry_point()`` builds it.
ENTRY_MODULES = {
    "analyze": "estate.serving.analyze",
    "chat": "estate.serving.chat.entry",
    "explain": "estate.serving.explain",
    "predict": "estate.serving.predict",
    "retrain": "estate.serving.retrain",
}

limit_malloc_arenas()  # before gunicorn's request threads: one arena keeps batches' memory low
install_body_guard()  # bound every request body's size and read time (estate/serving/bodies.py)

__all__ = ["analyze", "chat", "explain", "predict", "retrain"]  # noqa: F822 (built by __getattr__)


def __getattr__(name: str) -> Callable[..., Any]:
    """Import the module of entry point `name`, build it with its settings, keep it."""
    if name not in ENTRY_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _building():
        function: Callable[..., Any] = importlib.import_module(ENTRY_MODULES[name]).entry_point()
    globals()[name] = function
    return function


def __dir__() -> list[str]:
    """The entry points too, so a wrong ``--target`` is answered with their names."""
    return sorted({*globals(), *__all__})
