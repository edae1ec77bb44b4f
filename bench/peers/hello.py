"""A functions-framework hello world: the floor under any function's cold start.

functions-framework --source bench/peers/hello.py --target hello
"""

from __future__ import annotations


def hello(request: object) -> str:
    """Answer every request with a constant: no imports, no model."""
    return "Hello World!"
