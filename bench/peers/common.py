"""What each peer server does with rows: the baseline's fitted pipeline, unpickled once.

Runs inside a peer's own virtual environment (scikit-learn, XGBoost, pandas, pydantic at
the versions the pipeline was fitted with, and the repository on ``PYTHONPATH`` so the
pickled encoder's class imports): nothing from the serving code is imported here.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import pandas as pd


class PricedPipeline:
    """The pickled `bench/.cache/baseline.joblib` payload: prices from JSON-like rows."""

    def __init__(self, path: str) -> None:
        payload = joblib.load(path)
        self.pipeline = payload["pipeline"]
        self.features: list[str] = payload["features"]
        self.log_target: bool = payload["log_target"]

    @classmethod
    def from_env(cls) -> PricedPipeline:
        """The payload at ``MODEL_PATH``, as the FastAPI baseline reads it."""
        return cls(os.environ["MODEL_PATH"])

    def prices(self, rows: list[dict[str, Any]]) -> list[float]:
        """One price per row; absent features are missing values, as for the baseline."""
        frame = pd.DataFrame(rows, columns=self.features)
        raw = np.asarray(self.pipeline.predict(frame), dtype=np.float64)
        out = np.exp(raw) if self.log_target else raw
        prices: list[float] = out.tolist()
        return prices
