"""The manifest of a trained bundle, assembled from named, typed parts.

Every field is a keyword of `assemble_manifest`, and `Manifest` is built with keywords
only, so mypy (with the pydantic plugin's ``init_forbid_extra`` / ``init_typed``) checks
each name and type at the seam between training and the bundle contract, the one place a
misspelt field would otherwise be dropped silently by readers that ignore unknown fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estate.contract.bundle import (
    FORMAT_VERSION,
    CandidateResult,
    ConformalInterval,
    DecisionThreshold,
    DriftReference,
    InputSchema,
    Lineage,
    Manifest,
    OutputSpec,
)
from estate.training.config import DatasetConfig

if TYPE_CHECKING:
    from estate.export.exporter import ExportFacts


def output_spec(config: DatasetConfig) -> OutputSpec:
    """What the model predicts, in which units, as the config declares it."""
    return OutputSpec(
        name=config.output_name,
        target=config.target,
        description=config.description,
        units=config.units,
        target_transform=config.target_transform,
        positive_label=config.positive_label,
    )


def assemble_manifest(
    config: DatasetConfig,
    *,
    version: str,
    schema: InputSchema,
    candidates: list[CandidateResult],
    chosen: str,
    chosen_params: dict[str, Any],
    selection_metric: str,
    interval: ConformalInterval | None,
    threshold: DecisionThreshold | None,
    drift: DriftReference | None,
    training: dict[str, Any],
    lineage: Lineage,
    export: ExportFacts,
) -> Manifest:
    """The whole manifest: what training measured, plus what only the export knows."""
    return Manifest(
        format_version=FORMAT_VERSION,
        name=config.name,
        version=version,
        created_at=export.created_at,
        task=config.task,
        input=schema,
        output=output_spec(config),
        candidates=candidates,
        chosen=chosen,
        chosen_params=chosen_params,
        selection_metric=selection_metric,
        interval=interval,
        threshold=threshold,
        drift=drift,
        training=training,
        lineage=lineage,
        model_file=export.model_file,
        parity=export.parity,
        libraries=export.libraries,
        git_commit=export.git_commit,
        config=config.model_dump(mode="json"),
        promotion=None,
        explainer=export.explainer,
    )
