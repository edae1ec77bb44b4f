"""The floor under any ONNX function's cold start: functions-framework, numpy and
onnxruntime, one session on the very graph `predict` serves, nothing else.

functions-framework --source bench/peers/floor.py --target floor
    (ESTATE_ARTIFACTS, ESTATE_MODEL_NAME: the store and model `predict` serves)

It imports what every function answering from this graph must import, opens the session
with serving's options (`estate.runtime.session`, repeated here so that this file imports
no estate code) and answers a POST with the graph's prediction for the first instance:
numbers taken as they come, every other feature as stripped text, no validation, no
intervals, no log line (on a complete row that is predict's price, as
tests/unit/bench/test_floor.py checks). Whatever `predict` spends above this is ours;
what this spends above the hello world is the libraries'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

_store = Path(os.environ.get("ESTATE_ARTIFACTS", "./artifacts")) / "models"
_name = os.environ.get("ESTATE_MODEL_NAME", "ames")
_version = json.loads((_store / _name / "serving.json").read_text())["champion"]
_bundle = _store / _name / _version
_schema = json.loads((_bundle / "manifest.json").read_text())["input"]
_numeric = [(c["name"], float(c["impute"])) for c in _schema["numeric"]]
_categorical = [(c["name"], str(c["impute"])) for c in _schema["categorical"]]

_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
_options.log_severity_level = 3
_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
_session = ort.InferenceSession(
    (_bundle / "model.onnx").read_bytes(), _options, providers=["CPUExecutionProvider"]
)
_inputs = {i.name for i in _session.get_inputs()}


def floor(request: Any) -> dict[str, float]:
    """The first instance's prediction, from one session run."""
    row = request.get_json(force=True)["instances"][0]
    feeds = {}
    if "numeric" in _inputs:
        values = [row.get(name, impute) for name, impute in _numeric]
        feeds["numeric"] = np.array([[np.nan if v is None else float(v) for v in values]])
    if "categorical" in _inputs:
        # Stripped, as the bundle's category rule does (the Ames file has "WD "); nothing
        # else of that rule (integral floats, unseen or blank values) is repeated here.
        texts = [str(row.get(name, impute)).strip() for name, impute in _categorical]
        feeds["categorical"] = np.array([texts], dtype=object)
    (prediction,) = _session.run(["prediction"], feeds)
    return {"prediction": float(prediction.reshape(-1)[0])}
