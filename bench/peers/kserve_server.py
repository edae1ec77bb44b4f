"""The KServe peer: a `kserve.Model` subclass on `kserve.ModelServer`, v1 protocol.

    MODEL_PATH=bench/.cache/baseline.joblib PYTHONPATH=. \
        python bench/peers/kserve_server.py --model_name ames --http_port 8080 --workers 1

Runs in ``bench/.cache/peers/kserve/venv``; answers ``POST /v1/models/<name>:predict``
with ``{"instances": [...]}``, as KServe's custom-model guide shows.
"""

from __future__ import annotations

from typing import Any

import kserve  # type: ignore[import-not-found]
from kserve import model_server

from bench.peers.common import PricedPipeline


class Ames(kserve.Model):  # type: ignore[misc]
    """The fitted Ames pipeline, loaded once at start."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.model: PricedPipeline | None = None
        self.load()

    def load(self) -> bool:
        self.model = PricedPipeline.from_env()
        self.ready = True
        return True

    def predict(self, payload: dict[str, Any], headers: Any = None) -> dict[str, Any]:
        assert self.model is not None
        return {"predictions": self.model.prices(payload["instances"])}


if __name__ == "__main__":
    # kserve.model_server parses --http_port, --grpc_port, --workers, --model_name ... itself.
    kserve.ModelServer().start([Ames(model_server.args.model_name)])
