"""Write the MLflow peer's model folder: the baseline's fitted pipeline, sklearn flavour.

    PYTHONPATH=. bench/.cache/peers/mlflow/venv/bin/python bench/peers/mlflow_save.py \
        bench/.cache/baseline.joblib bench/.cache/peers/mlflow/model

Runs in the MLflow peer's own environment (`bench.peers.venvs` calls it once). The
model is saved in MLflow 3's default format (skops), trusting exactly the types this
pipeline holds (our encoder, XGBoost), and without a signature or input example, as a
plain ``log_model`` call stores it: the scoring server enforces no schema.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import joblib
import mlflow.sklearn  # type: ignore[import-not-found]
import skops.io  # type: ignore[import-not-found]


def main(source: str, target: str) -> None:
    """Save the pickled payload's pipeline as an MLflow model at `target`."""
    pipeline = joblib.load(source)["pipeline"]
    pins = [f"{name}=={version(name)}" for name in ("scikit-learn", "xgboost-cpu", "pandas")]
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    mlflow.sklearn.save_model(pipeline, target, pip_requirements=pins, skops_trusted_types=trusted)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
