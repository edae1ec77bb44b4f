"""`bench.peers.floor`, the cold-start floor of an ONNX function, serves the very graph
`predict` serves: on a complete row it answers predict's price, so the bench compares
the libraries' cost with ours on the same work, not with a stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, function_client
from functions_framework import create_app


def test_the_floor_answers_what_predict_answers_for_a_complete_row(
    ames_store: Path, serving_env: pytest.MonkeyPatch
) -> None:
    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    serving_env.setenv("ESTATE_MODEL_NAME", "ames")
    row = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]
    body = {"instances": [row]}

    floor = create_app(target="floor", source=str(REPO / "bench" / "peers" / "floor.py"))
    answer = floor.test_client().post("/", json=body)
    ours = function_client("predict").post("/", json=body)

    assert answer.status_code == 200
    assert ours.status_code == 200
    price = ours.get_json()["predictions"][0]["price"]
    assert answer.get_json()["prediction"] == pytest.approx(price, rel=1e-9)
