"""The whole job, step by step."""

from __future__ import annotations

from estate.contract.bundle import Manifest
from estate.training.config import DatasetConfig
from estate.training.train._calibration import calibrate
from estate.training.train._export import export_and_gate
from estate.training.train._prepare import load_and_prepare
from estate.training.train._progress import Progress
from estate.training.train._selection import choose_and_refit, score_candidates


def train(
    config: DatasetConfig,
    data_uri: str,
    output: str,
    *,
    quiet: bool = False,
    allow_schema_change: bool = False,
) -> Manifest:
    """The whole job; returns the manifest of the bundle it wrote (promoted if it passed)."""
    say = Progress(quiet)
    table, data = load_and_prepare(config, data_uri, say)
    scored = score_candidates(config, data, say)
    choice = choose_and_refit(config, data, scored, say)
    calibration = calibrate(config, data, choice, say)
    return export_and_gate(
        config, table, data, scored, choice, calibration, output, say, allow_schema_change
    )
