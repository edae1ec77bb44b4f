"""main.py builds each entry point on first use (PEP 562): a target loads only its own
function's module, reads only its own settings, and keeps its signature type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = {
    "predict": "estate.serving.predict",
    "explain": "estate.serving.explain",
    "chat": "estate.serving.chat",
    "analyze": "estate.serving.analyze",
    "retrain": "estate.serving.retrain",
}


@pytest.mark.parametrize("target", sorted(FUNCTIONS))
def test_a_target_loads_only_its_own_function(target: str, tmp_path: Path) -> None:
    """In a fresh process, as functions-framework starts an instance: `create_app` (the
    model loads on the first request; test_http.py serves one over real HTTP)."""
    code = (
        "import json, sys\n"
        "from functions_framework import create_app, _function_registry as registry\n"
        f"create_app(target={target!r}, source='main.py')\n"
        f"functions = {FUNCTIONS!r}\n"
        "print(json.dumps({\n"
        f"    'signature': registry.get_func_signature_type({target!r}, None),\n"
        "    'loaded': sorted(n for n, m in functions.items()\n"
        "                     if any(k == m or k.startswith(m + '.') for k in sys.modules)),\n"
        "    'jobs': 'estate.serving.jobs' in sys.modules,\n"
        "}))\n"
    )
    env = {**os.environ, "ESTATE_ARTIFACTS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    signature = "cloudevent" if target == "retrain" else "http"
    # retrain imports its job builder only when an event asks for a job (test_retrain.py)
    assert report == {"signature": signature, "loaded": [target], "jobs": False}


def test_an_unknown_target_is_refused_with_the_entry_points_named() -> None:
    from functions_framework import create_app
    from functions_framework.exceptions import MissingTargetException

    with pytest.raises(MissingTargetException) as caught:
        create_app(target="predcit", source=str(REPO / "main.py"))
    assert all(f"'{name}'" in str(caught.value) for name in FUNCTIONS)


def test_main_has_no_other_lazy_names() -> None:
    import main

    with pytest.raises(AttributeError, match="has no attribute 'predcit'"):
        main.predcit  # noqa: B018
