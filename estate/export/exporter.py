"""Export a fitted pipeline as a bundle: build the graph, prove parity, write, checksum.

Training calls `export_bundle` with the fitted encoded layout and estimator, a few held-out rows
and the pipeline's own predictions on them. Nothing is written unless the ONNX graph
reproduces those predictions within the tolerance (see `measure_parity` for the rule of
each task).
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from estate.contract.bundle import (
    SCALE_OUTPUT,
    ExplainerSpec,
    Manifest,
    ModelFile,
    Parity,
    sha256_hex,
)
from estate.contract.errors import ExportError
from estate.export.onnx_graph import build_graph
from estate.export.scale_graph import ScaleHead
from estate.runtime.layout import EncodedLayout
from estate.runtime.session import run_graph
from estate.storage.registry import write_bundle
from estate.storage.store import ArtifactStore

_LIBRARIES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost-cpu",
    "xgboost",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
    "pydantic",
)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the bundle (for audits and reproduction)."""
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(cwd: str | Path = ".") -> str | None:
    """The source commit, or None outside a git checkout (e.g. in a container image)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


#: Default absolute tolerance on a probability. The graph computes in float32, and
#: onnxruntime's binary classifiers return a small probability as ``1 - v`` with ``v``
#: near 1, so a probability carries an absolute error of a few float32 steps at 1
#: (``2**-24`` ≈ 6e-8) however small it is: 1e-6 leaves room for that and no more.
PROBABILITY_ABS_TOLERANCE = 1e-6


def log_odds(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))``; ±inf at 0 and 1 (a difference there is infinite, as it is)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result: np.ndarray = np.log(p) - np.log1p(-p)
    return result


def measure_parity(
    model_bytes: bytes,
    numeric: np.ndarray,
    categorical: np.ndarray,
    reference: np.ndarray,
    tolerance: float,
    *,
    probability: bool = False,
    abs_tolerance: float = PROBABILITY_ABS_TOLERANCE,
) -> Parity:
    """Compare the graph with the fitted pipeline; raise `ExportError` when they disagree.

    Regression: every row's relative difference must be within `tolerance`. Probabilities
    (``probability=True``) are judged where a difference matters: a row agrees when its
    probability is within `abs_tolerance` absolutely (what a caller sees and the decision
    threshold acts on) or its odds are within `tolerance` relatively (``|Δ log-odds|``;
    what ranks and prices rare events). A relative rule on the probability alone would
    refuse every imbalanced data set: 1.0729e-4 vs 1.0722e-4 is 6e-4 apart relatively but
    7e-8 absolutely, a float32 rounding nobody can act on.
    """
    got = run_graph(model_bytes, numeric, categorical)
    diff = np.abs(got - reference)
    bad = np.flatnonzero(~np.isfinite(got))
    if bad.size:
        raise ExportError(
            f"ONNX parity failed: the graph returned {bad.size} non-finite prediction(s) "
            f"(first at row {bad[0]}: {got[bad[0]]}); choose another candidate; nothing was "
            "written."
        )
    if probability:
        with np.errstate(invalid="ignore"):  # inf - inf: both 0 (or 1), settled below
            odds = np.abs(log_odds(got) - log_odds(reference))
        settled = diff <= abs_tolerance  # False for NaN: a NaN reference never agrees
        rel = np.where(settled, 0.0, odds)
    else:
        rel = diff / np.maximum(np.abs(reference), 1e-6)
    parity = Parity(
        rows=int(reference.size),
        max_abs_diff=float(diff.max(initial=0.0)),
        max_rel_diff=float(rel.max(initial=0.0)),
        tolerance_rel=tolerance,
        tolerance_abs=abs_tolerance if probability else None,
    )
    if parity.max_rel_diff <= tolerance:  # NaN (a non-finite reference) fails
        return parity
    worst = int(np.nanargmax(np.where(np.isnan(rel), np.inf, rel)))
    row = f"row {worst}: onnx {got[worst]:.6g} vs pipeline {reference[worst]:.6g}"
    if probability:
        raise ExportError(
            f"ONNX parity failed on probabilities ({row}): both rules fail there: the "
            f"probability differs by {diff[worst]:.3g} > {abs_tolerance:g} (absolute rule) "
            f"and the log-odds by {rel[worst]:.3g} > {tolerance:g} (relative rule on the "
            "odds). Choose another candidate, or loosen parity_abs_tolerance / "
            "parity_tolerance in the config if that difference does not matter; nothing was "
            "written."
        )
    raise ExportError(
        f"ONNX parity failed: max relative difference {parity.max_rel_diff:.3g} > "
        f"{tolerance:g} (relative rule; {row}). Keep tree inputs float32 or choose another "
        "candidate; nothing was written."
    )


def measure_scale_parity(
    model_bytes: bytes,
    numeric: np.ndarray,
    categorical: np.ndarray,
    reference: np.ndarray,
    tolerance: float,
) -> float:
    """Largest relative difference of the graph's `SCALE_OUTPUT` from `reference` (the
    `ScaleHead.predict` of the same rows); `ExportError` above `tolerance` or non-finite."""
    got = run_graph(model_bytes, numeric, categorical, output=SCALE_OUTPUT)
    if not (np.isfinite(got).all() and (got > 0).all()):
        raise ExportError(
            "ONNX parity failed: the interval scale output is not a positive finite number on "
            "every parity row; nothing was written. Retrain (the scale model is refitted)."
        )
    rel = np.abs(got - reference) / np.maximum(np.abs(reference), 1e-12)
    worst = float(rel.max(initial=0.0))
    if not worst <= tolerance:
        i = int(np.argmax(rel))
        raise ExportError(
            f"ONNX parity failed on the interval scale: max relative difference {worst:.3g} > "
            f"{tolerance:g} (row {i}: onnx {got[i]:.6g} vs reference {reference[i]:.6g}); "
            "nothing was written."
        )
    return worst


@dataclass(frozen=True)
class ExportFacts:
    """The manifest fields only the export knows: the graph's checksum and opsets, the
    measured parity, the explainer file, and the code that wrote the bundle."""

    created_at: datetime
    model_file: ModelFile
    parity: Parity
    libraries: dict[str, str]
    git_commit: str | None
    explainer: ExplainerSpec | None


def export_bundle(
    store: ArtifactStore,
    *,
    layout: EncodedLayout,
    estimator: Any,
    classifier: bool,
    log_target: bool,
    parity_rows: tuple[np.ndarray, np.ndarray],
    reference: np.ndarray,
    tolerance: float,
    doc: str,
    assemble: Callable[[ExportFacts], Manifest],
    abs_tolerance: float = PROBABILITY_ABS_TOLERANCE,
    decide: Callable[[Manifest, bytes], Manifest] | None = None,
    explain_rows: tuple[np.ndarray, np.ndarray] | None = None,
    card: Callable[[Manifest], tuple[Manifest, bytes]] | None = None,
    comparables: Callable[[Manifest], tuple[Manifest, bytes]] | None = None,
    scale: tuple[ScaleHead, np.ndarray] | None = None,
) -> Manifest:
    """Build, verify and write one immutable bundle; returns its manifest.

    `assemble` turns the export's facts into the whole manifest (training's typed
    ``assemble_manifest``: name, version, metrics, …); `doc` labels the ONNX graph.
    Parity is judged by `measure_parity`'s rule for the task (`tolerance` relative;
    `abs_tolerance` absolute, on probabilities only).
    `decide`, if given, sees the finished manifest and model before the write and returns
    the manifest to write (training records its promotion-gate verdicts this way).
    With `explain_rows` (packed training rows) it also writes the SHAP explainer file.
    `card`, if given, renders the model card from the decided manifest and returns the
    manifest with the card's entry and the card's bytes (written with the bundle).
    `comparables`, if given, does the same for the table of comparable sales.
    `scale`, if given, is the adaptive interval's scale head and its numpy reference on the
    parity rows: the graph gets the ``scale`` output, parity-checked like ``prediction``.
    """
    graph = build_graph(
        layout,
        estimator,
        classifier=classifier,
        log_target=log_target,
        doc=doc,
        scale=scale[0] if scale else None,
    )
    model_bytes = graph.SerializeToString()
    parity = measure_parity(
        model_bytes,
        *parity_rows,
        reference,
        tolerance,
        probability=classifier,
        abs_tolerance=abs_tolerance,
    )
    if scale is not None:
        worst = measure_scale_parity(model_bytes, *parity_rows, scale[1], tolerance)
        parity = parity.model_copy(update={"scale_max_rel_diff": worst})
    explained = None
    if explain_rows is not None:
        from estate.export.shap_tables import export_explainer

        explained = export_explainer(
            layout,
            estimator,
            classifier=classifier,
            model_bytes=model_bytes,
            parity_rows=parity_rows,
            sample_rows=explain_rows,
        )
    manifest = assemble(
        ExportFacts(
            created_at=datetime.now(UTC),
            model_file=ModelFile(
                sha256=sha256_hex(model_bytes),
                bytes=len(model_bytes),
                opset={o.domain or "ai.onnx": o.version for o in graph.opset_import},
            ),
            parity=parity,
            libraries=library_versions(),
            git_commit=git_commit(),
            explainer=explained[1] if explained else None,
        )
    )
    if decide is not None:
        manifest = decide(manifest, model_bytes)
    card_bytes = None
    if card is not None:
        manifest, card_bytes = card(manifest)
    comparables_bytes = None
    if comparables is not None:
        manifest, comparables_bytes = comparables(manifest)
    write_bundle(
        store,
        manifest,
        model_bytes,
        explained[0] if explained else None,
        card_bytes,
        comparables_bytes,
    )
    return manifest
