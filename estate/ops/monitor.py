"""Drift report: served predictions (JSON log lines) against a bundle's reference histograms.

Reads the lines ``estate/serving/predlog.py`` writes (`PredictionLogLine` per row, and
`PredictionBatchLine` per chunk of a batch, read as its rows) — from a local
``.jsonl`` file or folder, or ``gs://`` (one object, or every object under a
``gs://bucket/prefix/``, as a Cloud Logging sink exports them; a sink's ``jsonPayload``
wrapper is unwrapped).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from estate.contract.bundle import Manifest
from estate.contract.errors import ConfigError
from estate.contract.predlog import PredictionBatchLine, PredictionLogLine, parse_log_line
from estate.runtime import drift
from estate.storage.store import GCSStore
from estate.storage.uris import read_bytes


@dataclass(frozen=True)
class Row:
    """One feature's (or the prediction's) drift."""

    name: str
    kind: str
    psi: float
    status: str
    moved: str


@dataclass
class Report:
    model: str
    version: str
    rows: int
    skipped: int
    threshold: float
    results: list[Row]

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.results if r.psi > self.threshold]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": [r.name for r in self.drifted]}


def _texts(uri: str) -> Iterator[str]:
    if uri.startswith("gs://") and uri.endswith("/"):
        store = GCSStore(uri)
        keys = store.list("")
        if not keys:
            raise ConfigError(f"No log files under {uri}; check the sink's destination.")
        for key in keys:
            yield store.read_bytes(key).decode()
        return
    path = Path(uri)
    if not uri.startswith("gs://") and path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl", ".log"))
        if not files:
            raise ConfigError(f"No .json/.jsonl/.log files in {path}.")
        for file in files:
            yield file.read_text()
        return
    yield read_bytes(uri).decode()


def read_predictions(uri: str) -> Iterator[PredictionLogLine]:
    """Every logged prediction, one per row: a per-row line as it is, a batch line as its
    rows; any other line (server logs, errors, other events, lines that parse as neither)
    is skipped."""
    for text in _texts(uri):
        for line in text.splitlines():
            parsed = parse_log_line(line)
            if isinstance(parsed, PredictionBatchLine):
                yield from parsed.rows()
            elif parsed is not None:
                yield parsed


def drift_report(
    manifest: Manifest, entries: list[PredictionLogLine], threshold: float = drift.DRIFT_PSI
) -> Report:
    """PSI per raw feature and for the prediction, worst first."""
    ref = manifest.drift
    if ref is None:
        raise ConfigError(
            f"{manifest.name}/{manifest.version} has no drift reference (trained before "
            "drift monitoring existed): retrain it, then monitor the new version."
        )
    mine = [
        e for e in entries if (e.model.name, e.model.version) == (manifest.name, manifest.version)
    ]
    if not mine:
        seen = sorted({f"{e.model.name}/{e.model.version}" for e in entries})
        raise ConfigError(
            f"No logged predictions of {manifest.name}/{manifest.version} "
            f"({len(entries)} of other versions: {', '.join(seen[:5]) or 'none'}); "
            "pass --version to choose one."
        )
    features = [e.features for e in mine]
    results = []
    for name, hist in ref.numeric.items():
        values = np.asarray([_number(f.get(name)) for f in features], dtype=np.float64)
        value, moved = drift.numeric_psi(hist, values)
        results.append(_row(name, "numeric", value, moved, threshold))
    for name, cat in ref.categorical.items():
        value, moved = drift.categorical_psi(cat, [f.get(name) for f in features])
        results.append(_row(name, "categorical", value, moved, threshold))
    out = manifest.output.name
    predicted = np.asarray([_number(e.output.get(out)) for e in mine])
    value, moved = drift.numeric_psi(ref.prediction, predicted)
    results.append(_row(f"prediction ({out})", "output", value, moved, threshold))
    results.sort(key=lambda r: r.psi, reverse=True)
    return Report(
        manifest.name, manifest.version, len(mine), len(entries) - len(mine), threshold, results
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _row(name: str, kind: str, value: float, moved: str, threshold: float) -> Row:
    if value > threshold:
        status = "DRIFT"
    elif value > min(drift.WARN_PSI, threshold):
        status = "watch"
    else:
        status = "ok"
    return Row(name, kind, round(value, 4), status, moved)


def format_report(report: Report, limit: int | None = 15) -> str:
    """A fixed-width table, worst features first."""
    shown = report.results if limit is None else report.results[:limit]
    width = max([len(r.name) for r in shown] + [7])
    lines = [
        f"{report.model} {report.version}: {report.rows} logged predictions"
        + (f" ({report.skipped} of other models/versions skipped)" if report.skipped else ""),
        f"{'feature':<{width}}  {'kind':<11}  {'PSI':>7}  status  largest move (train → served)",
    ]
    for r in shown:
        lines.append(f"{r.name:<{width}}  {r.kind:<11}  {r.psi:>7.4f}  {r.status:<6}  {r.moved}")
    hidden = len(report.results) - len(shown)
    if hidden:
        lines.append(f"… {hidden} more, all with lower PSI (--all shows them)")
    drifted = report.drifted
    lines.append(
        f"DRIFT: {len(drifted)} of {len(report.results)} above PSI {report.threshold:g}: "
        + ", ".join(r.name for r in drifted)
        if drifted
        else f"OK: every PSI is at most {report.threshold:g}"
    )
    return "\n".join(lines)
