"""Training job: data → candidates scored on shared K folds → best refit → ONNX bundle.

Runs the same as a local process or as a Vertex AI custom job::

    estate train --config configs/ames.toml
    estate train --config cfg.toml --data gs://b/data.parquet --store gs://b/estate

One module per step, in the order `train` runs them: `_prepare` (split and encode once),
`_selection` (K-fold CV of every candidate, the best refit), `_calibration` (interval or
decision threshold), `_export` (the bundle, its gates and promotion); `_job` chains them.
"""

from estate.training.train._calibration import Calibration, calibrate, calibrate_interval
from estate.training.train._export import (
    card_facts,
    comparables_table,
    documented,
    drift_reference,
    explain_sample,
    export_and_gate,
    output_units,
    training_summary,
)
from estate.training.train._job import train
from estate.training.train._prepare import Prepared, load_and_prepare, prepare, target_values
from estate.training.train._progress import Progress
from estate.training.train._selection import (
    Choice,
    Scored,
    blend_cost,
    candidate_cost,
    cheapest_near_best,
    choose_and_refit,
    metrics_for,
    score_candidates,
)

__all__ = [
    "Calibration",
    "Choice",
    "Prepared",
    "Progress",
    "Scored",
    "blend_cost",
    "calibrate",
    "calibrate_interval",
    "candidate_cost",
    "card_facts",
    "cheapest_near_best",
    "choose_and_refit",
    "comparables_table",
    "documented",
    "drift_reference",
    "explain_sample",
    "export_and_gate",
    "load_and_prepare",
    "metrics_for",
    "output_units",
    "prepare",
    "score_candidates",
    "target_values",
    "train",
    "training_summary",
]
