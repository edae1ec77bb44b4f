"""Baseline: the model served the way MLOps demo repos do it, for `make bench` to beat.

A FastAPI app that unpickles the fitted scikit-learn pipeline with joblib at import,
builds a pandas DataFrame from each request and calls ``pipeline.predict``. It is kept
deliberately plain (module-level model, environment variable for the path, no
hardening): that is the point of comparison, not a pattern to copy.

    MODEL_PATH=bench/.cache/baseline.joblib uvicorn bench.baseline.app:app --port 8090
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_PATH = os.environ.get("MODEL_PATH", "model.joblib")  # how demo repos configure it
model = joblib.load(MODEL_PATH)
pipeline = model["pipeline"]
FEATURES: list[str] = model["features"]
LOG_TARGET: bool = model["log_target"]

app = FastAPI(title="baseline house-price API")


class PredictRequest(BaseModel):
    instances: list[dict[str, float | str | None]]


@app.get("/")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/")
def predict(request: PredictRequest) -> dict[str, Any]:
    df = pd.DataFrame(request.instances, columns=FEATURES)
    preds = pipeline.predict(df)
    if LOG_TARGET:
        preds = np.exp(preds)
    return {"predictions": [{"price": float(p)} for p in preds]}
