"""System tier: the real functions-framework server on a free localhost port."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from http_server import serve

from estate.contract.bundle import Manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "predict_ames.json"
FORBIDDEN = (
    "sklearn",
    "xgboost",
    "pandas",
    "joblib",
    "skl2onnx",
    "onnxmltools",
    "google.cloud.storage",
    "fastapi",  # the bench baseline's framework (bench/baseline), never serving's
)


@pytest.fixture(scope="module")
def server(ames_store: Path) -> Iterator[str]:
    with serve(ames_store, "ames") as url:
        yield url


def test_readme_request_over_http(server: str) -> None:
    body = json.loads((REPO / "examples" / "predict_ames.json").read_text())
    answer = requests.post(server, json=body, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    pred = answer.json()["predictions"][0]
    assert pred["interval"]["lower"] < pred["price"] < pred["interval"]["upper"]


def test_predict_over_http_gives_each_house_its_own_interval(
    server: str, ames_manifest: Manifest
) -> None:
    """The Ames bundle's adaptive band: widths differ by house, each within the range the
    manifest states (quantile x a scale in [scale_min, scale_max], in log price)."""
    house = json.loads(EXAMPLE.read_text())["instances"][0]
    houses = [
        house,
        {**house, "Sale.Condition": "Abnorml", "Sale.Type": "COD"},
        {"area": 650.0, "Overall.Qual": 2, "Neighborhood": "IDOTRR", "Sale.Condition": "Abnorml"},
    ]
    answer = requests.post(server, json={"instances": houses}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert ames_manifest.interval is not None
    spec = ames_manifest.interval.adaptive
    assert spec is not None
    widths = []
    for pred in answer.json()["predictions"]:
        lower, upper = pred["interval"]["lower"], pred["interval"]["upper"]
        assert lower < pred["price"] < upper
        widths.append(math.log(upper) - math.log(lower))
    assert len({round(w, 9) for w in widths}) == 3
    for w in widths:
        assert 2 * spec.quantile * spec.scale_min * (1 - 1e-9) <= w
        assert w <= 2 * spec.quantile * spec.scale_max * (1 + 1e-9)


def test_bad_requests_over_http_then_still_serving(server: str) -> None:
    bad = json.loads((REPO / "examples" / "predict_bad.json").read_text())
    answer = requests.post(server, json=bad, timeout=10)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {"instances[0].area", "instances[0].Neighborhood", "instances[0].Pool"} <= fields
    assert (
        requests.post(
            server, data="x", headers={"Content-Type": "text/csv"}, timeout=10
        ).status_code
        == 415
    )
    assert requests.delete(server, timeout=10).status_code == 405
    assert (
        requests.post(
            server,
            data=b"\x00" * 9_000_000,
            headers={"Content-Type": "application/json"},
            timeout=30,
        ).status_code
        == 413
    )
    assert requests.get(server, timeout=10).json()["status"] == "ok"


def test_classification_bundle_over_http(tmp_path: Path) -> None:
    from estate.training.config import load_config
    from estate.training.train import train

    train(
        load_config(REPO / "configs/quick_sale.toml"),
        str(REPO / "data/quick_sale.csv"),
        str(tmp_path),
        quiet=True,
    )
    with serve(tmp_path, "quick-sale") as url:
        listing = {
            "list_price": 150000,
            "estimated_value": 170000,
            "living_area": 1500,
            "condition": "good",
            "neighbourhood": "Somerset",
            "month_listed": 5,
        }
        pred = requests.post(url, json={"instances": [listing]}, timeout=10).json()["predictions"][
            0
        ]
        assert 0.0 <= pred["probability"] <= 1.0
        assert pred["label"] in ("yes", "not yes")
        assert (pred["label"] == "yes") == (pred["probability"] >= pred["threshold"])
        assert {w["field"] for w in pred["warnings"]} == {"bedrooms", "photos"}
        # No sale prices, no comparables: still 200, and the answer says why.
        asked = {"instances": [listing], "parameters": {"comparables": 5}}
        answer = requests.post(url, json=asked, timeout=10)
        assert answer.status_code == 200
        assert "comparables" not in answer.json()["predictions"][0]
        assert "classification model" in answer.json()["comparables_unavailable"]
        bad = {"instances": [listing], "parameters": {"comparables": 99}}
        assert requests.post(url, json=bad, timeout=10).status_code == 400
        assert requests.get(url, timeout=10).json()["comparables"]["available"] is False


CHAT_BODY = {"messages": [{"role": "user", "content": "What is a 3 bed 1,800 sq ft house worth?"}]}


@pytest.mark.parametrize(
    ("target", "extra_banned"),
    [
        ("predict", ()),
        ("explain", ("shap", "numba", "scipy")),
        ("chat", ("google.cloud.secretmanager",)),  # no LLM configured: no cloud client
    ],
)
def test_serving_never_imports_training_libraries(
    ames_store: Path, target: str, extra_banned: tuple[str, ...]
) -> None:
    """Serve one real answer in a fresh process, then list what got imported."""
    body = CHAT_BODY if target == "chat" else json.loads(EXAMPLE.read_text())
    banned = (*FORBIDDEN, *extra_banned)
    code = (
        "import json, sys\n"
        "from functions_framework import create_app\n"
        f"c = create_app(target={target!r}, source='main.py').test_client()\n"
        f"answer = c.post('/', json={body!r})\n"
        "assert answer.status_code == 200, answer.get_data(as_text=True)\n"
        f"banned = {banned!r}\n"
        "bad = [m for m in sys.modules\n"
        "       if any(m == b or m.startswith(b + '.') for b in banned)]\n"
        "print(json.dumps(bad))\n"
    )
    env = {**os.environ, "ESTATE_ARTIFACTS": str(ames_store)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
