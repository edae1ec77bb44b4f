"""Step 1: the data split once (train / holdout / folds) and encoded once, shared by
every candidate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from estate.contract.bundle import normalize_category
from estate.contract.cells import FLOAT32_MAX
from estate.contract.errors import ConfigError
from estate.training.config import DatasetConfig
from estate.training.data import Table, check_columns, load_table
from estate.training.encoder import TabularEncoder
from estate.training.evaluate import fold_indices
from estate.training.train._progress import Progress


@dataclass
class Prepared:
    """The data split once, encoded once, shared by every candidate."""

    features: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    holdout: np.ndarray
    encoder: TabularEncoder
    Z: np.ndarray
    rows_total: int
    folds: list[np.ndarray] = field(default_factory=list)
    #: Every row used, raw columns and target included (for the comparables table).
    rows: pd.DataFrame | None = None


def prepare(config: DatasetConfig, table: Table) -> Prepared:
    """Drop, filter, split off the target, split train/holdout and fit the encoder."""
    frame = table.frame
    rows_total = len(frame)
    if config.target not in frame.columns:
        raise ConfigError(
            f"Target column {config.target!r} is not in {table.uri}; columns: {list(frame.columns)}"
        )
    named = set(config.categorical) | (
        set(config.log1p) if isinstance(config.log1p, list) else set()
    )
    named |= set(config.features) | set(config.ordinal)
    named -= set(config.derived)  # computed, not read: the encoder checks their inputs
    if config.period is not None:
        named |= {c for c in (config.period.year, config.period.month) if c}
    absent = sorted(named - set(frame.columns))
    if absent:
        raise ConfigError(
            f"The config names columns that are not in {table.uri}: {absent}; "
            f"columns: {list(frame.columns)}"
        )
    # Before the row filter, which may compare a column that holds text by mistake.
    # Dropped columns (ids) and a classifier's labels may hold anything.
    free = set(config.categorical) | set(config.drop_columns) | set(config.ordinal)
    check_columns(frame, table.uri, free | ({config.target} if config.classifier else set()))
    if config.row_filter:
        try:
            frame = frame.query(config.row_filter)
        except Exception as exc:
            raise ConfigError(f"row_filter {config.row_filter!r} failed: {exc}") from exc
    frame = frame[frame[config.target].notna()]
    data_rows = frame.index.to_numpy() + 1  # data-row numbers in the file, for errors
    frame = frame.reset_index(drop=True)
    rows_used = frame.copy() if config.comparables is not None else None
    if len(frame) < config.folds * 10:
        raise ConfigError(
            f"Only {len(frame)} usable rows in {table.uri}; need at least {config.folds * 10}."
        )
    target = frame.pop(config.target)
    features = frame.drop(columns=[c for c in config.drop_columns if c in frame.columns])
    if config.classifier:
        labels = target.map(normalize_category)
        positive = normalize_category(config.positive_label)
        if positive not in set(labels):
            raise ConfigError(
                f"positive_label {config.positive_label!r} never occurs in {config.target!r}."
            )
        y = (labels == positive).to_numpy(dtype=np.float64)
    else:
        y = target_values(target, config, table.uri, data_rows)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))
    n_hold = round(len(y) * config.holdout_fraction)
    holdout, train = np.sort(order[:n_hold]), np.sort(order[n_hold:])
    log1p: str | list[str] = config.log1p
    encoder = TabularEncoder(
        categorical=config.categorical,
        log1p=log1p,
        ordinal=config.ordinal_scales(),
        derived=config.derived,
    )
    try:
        encoder.fit(features.iloc[train])
    except ConfigError as exc:
        raise ConfigError(f"{table.uri}: {exc}") from None
    Z = encoder.transform(features)
    prepared = Prepared(features, y, train, holdout, encoder, Z, rows_total, rows=rows_used)
    prepared.folds = fold_indices(
        train.size, y[train], config.folds, config.seed, config.classifier
    )
    return prepared


def target_values(
    target: pd.Series, config: DatasetConfig, uri: str, data_rows: np.ndarray
) -> np.ndarray:
    """The regression target on the model's scale; refuses text, ±inf, float32 overflow
    and (for a log target) values <= 0, naming the first bad row."""
    y = pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64)
    where = f"{uri}: column {config.target!r} (the regression target)"
    bad = ~(np.abs(y) <= FLOAT32_MAX)  # NaN (text), ±inf and overflow all fail
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"{where}, data row {data_rows[i]}: {str(target.iloc[i])[:80]!r} is not a finite "
            f"number within ±{FLOAT32_MAX:.3g}; fix the cell, or remove the row."
        )
    if config.target_transform == "log":
        bad = y <= 0
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(
                f"{where}, data row {data_rows[i]}: {y[i]:g} is not positive, and "
                "target_transform='log' needs a positive target; fix the row or drop the "
                "transform."
            )
        y = np.log(y)
    return y


def load_and_prepare(config: DatasetConfig, data_uri: str, say: Progress) -> tuple[Table, Prepared]:
    """Read the data and prepare it once for every candidate."""
    say(f"reading {data_uri}")
    table = load_table(data_uri)
    data = prepare(config, table)
    enc = data.encoder
    say(
        f"{len(data.y)} rows ({data.train.size} train, {data.holdout.size} holdout), "
        f"{len(enc.numeric_features)} numeric + {len(enc.categorical_features)} categorical "
        f"features → {data.Z.shape[1]} columns; {config.folds}-fold CV"
    )
    return table, data
