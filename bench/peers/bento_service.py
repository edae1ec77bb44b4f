"""The BentoML peer: a service whose one API scores ``{"instances": [...]}``.

    MODEL_PATH=bench/.cache/baseline.joblib PYTHONPATH=. \
        bentoml serve bench.peers.bento_service:Ames --port 3000

Runs in ``bench/.cache/peers/bentoml/venv`` (see `bench.peers.venvs`), one worker.
"""

from __future__ import annotations

from typing import Any

import bentoml  # type: ignore[import-not-found]

from bench.peers.common import PricedPipeline


@bentoml.service(workers=1)  # type: ignore[untyped-decorator, misc]
class Ames:
    """The fitted Ames pipeline behind ``POST /predict``."""

    def __init__(self) -> None:
        self.model = PricedPipeline.from_env()

    @bentoml.api  # type: ignore[untyped-decorator, misc]
    def predict(self, instances: list[dict[str, Any]]) -> list[float]:
        """One price per instance."""
        return self.model.prices(instances)
