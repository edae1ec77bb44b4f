"""The table of comparable sales a regression bundle carries (``comparables.npz``).

Training writes, for each sale it learnt from (after the row filter; the most recent
``max_rows``), the columns ``[comparables]`` in the config declares (price = the target,
sale date, id, coordinates, the fields people read) and its position in the similarity
space of `estate.runtime.similarity` (whose docstring states the rule). The weights come
from the finished manifest: the explainer's global importance of each raw feature.
Numpy arrays only (strings as fixed-width unicode), so serving loads it without pickle.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from estate.contract.bundle import ComparablesSpec, Manifest, category_text, sha256_hex
from estate.contract.errors import ConfigError
from estate.runtime.similarity import encoded, haversine_km
from estate.training.config import ComparablesConfig, DatasetConfig


def _text(values: pd.Series) -> np.ndarray:
    """A column as fixed-width unicode (no object arrays): '' for a missing cell."""
    return np.array([category_text(v) or "" for v in values.tolist()], dtype=np.str_)


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def raw_importance(manifest: Manifest) -> dict[str, float]:
    """Global importance per raw input: a derived feature's (e.g. Age = Yr.Sold -
    Year.Built) is shared equally among the raw features its formula reads, as a house
    can only be compared on what callers send."""
    if manifest.explainer is None:
        return {}
    imp = dict(manifest.explainer.global_importance)
    for d in manifest.input.derived or []:
        share = imp.pop(d.name, 0.0) / max(1, len(d.inputs))
        for name in d.inputs:
            imp[name] = imp.get(name, 0.0) + share
    return imp


def _weights(manifest: Manifest, cc: ComparablesConfig, skip: set[str]) -> dict[str, float]:
    """Raw feature → importance, the `cc.features` most important ones (ties: manifest order)."""
    names = [n for n in manifest.input.names() if n not in skip]
    if manifest.explainer is not None:
        imp = raw_importance(manifest)
        ranked = sorted(names, key=lambda n: -imp.get(n, 0.0))
        return {n: imp.get(n, 0.0) for n in ranked[: cc.features] if imp.get(n, 0.0) > 0}
    return dict.fromkeys(names[: cc.features], 1.0)  # no explainer: equal weights


def build_table(
    manifest: Manifest, config: DatasetConfig, rows: pd.DataFrame, packed: tuple[np.ndarray, ...]
) -> tuple[Manifest, bytes]:
    """The manifest with its ``comparables`` entry, and the table's bytes.

    `rows` are the sales training used (raw columns, target included, in order) and
    `packed` their graph inputs as serving packs them (numeric, categorical).
    """
    cc = config.comparables
    if cc is None:
        raise ConfigError("build_table needs a [comparables] section")
    date = cc.date or config.period
    named = [*cc.fields, *(c for c in (cc.id, cc.latitude, cc.longitude) if c)]
    if date is not None:
        named += [c for c in (date.year, date.month) if c]
    absent = [c for c in named if c not in rows.columns]
    if absent:
        raise ConfigError(f"[comparables] names columns that are not in the data: {absent}")
    numeric_idx = {f.name: j for j, f in enumerate(manifest.input.numeric)}
    geo = None
    if cc.latitude and cc.longitude:
        missing = [c for c in (cc.latitude, cc.longitude) if c not in numeric_idx]
        if missing:
            raise ConfigError(
                f"[comparables] coordinates {missing} must be numeric model features "
                "(serving reads a house's coordinates from its features)."
            )
        geo = (cc.latitude, cc.longitude)
    numeric, categorical = packed[0], packed[1]
    keep = np.arange(len(rows))
    year = month = None
    if date is not None:
        year = np.nan_to_num(_numbers(rows[date.year]), nan=0.0).astype(np.int32)
        month = (
            np.nan_to_num(_numbers(rows[date.month]), nan=0.0).astype(np.int32)
            if date.month
            else None
        )
        if len(rows) > cc.max_rows:  # the most recent sales
            stamp = year * 12 + (month if month is not None else 0)
            keep = np.sort(np.argsort(-stamp, kind="stable")[: cc.max_rows])
    elif len(rows) > cc.max_rows:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(rows), cc.max_rows, replace=False))
    rows = rows.iloc[keep]
    numeric, categorical = numeric[keep], categorical[keep]
    skip = {c for c in (*(geo or ()), cc.id, *((date.year, date.month) if date else ())) if c}
    importance = _weights(manifest, cc, skip)
    geo_importance = 0.0
    if geo is not None:
        if manifest.explainer is not None:
            imp = raw_importance(manifest)
            geo_importance = imp.get(geo[0], 0.0) + imp.get(geo[1], 0.0)
        else:
            geo_importance = 1.0
    total = sum(importance.values()) + geo_importance
    weights = {n: w / total for n, w in importance.items()}
    geo_weight = geo_importance / total if geo else 0.0
    if geo and cc.geo_share is not None:  # the config's share for km, the rest as ranked
        rest = sum(importance.values()) or 1.0
        weights = {n: w * (1 - cc.geo_share) / rest for n, w in importance.items()}
        geo_weight = cc.geo_share
    by_name = {f.name: f for f in manifest.input.numeric}
    num_names = [n for n in weights if n in numeric_idx]
    cat_idx = {c.name: j for j, c in enumerate(manifest.input.categorical)}
    cat_names = [n for n in weights if n in cat_idx]
    cols = [numeric_idx[n] for n in num_names]
    raw = numeric[:, cols]
    impute = np.array([by_name[n].impute for n in num_names], dtype=np.float64)
    log1p = np.array([by_name[n].log1p for n in num_names], dtype=bool)
    enc = encoded(raw, impute, log1p)
    mean = enc.mean(axis=0) if len(num_names) else np.zeros(0)
    std = enc.std(axis=0) if len(num_names) else np.zeros(0)
    w = np.array([weights[n] for n in num_names], dtype=np.float64)
    scale = np.where(std > 0, w / np.where(std > 0, std, 1.0), 0.0)
    arrays: dict[str, np.ndarray] = {
        "price": _numbers(rows[config.target]),
        "num_names": np.array(num_names, dtype=np.str_),
        "num_mean": mean,
        "num_scale": scale,
        "num_position": ((enc - mean) * scale).astype(np.float32),
        "num_raw": raw.astype(np.float64),
        "cat_names": np.array(cat_names, dtype=np.str_),
        "cat_weight": np.array([weights[n] for n in cat_names], dtype=np.float32),
        "cat_codes": _codes(manifest, categorical, cat_names, cat_idx),
        "field_names": np.array(cc.fields, dtype=np.str_),
    }
    for i, name in enumerate(cc.fields):
        column = rows[name]
        numeric_field = pd.api.types.is_numeric_dtype(column) and name not in config.categorical
        arrays[f"field_{i}"] = _numbers(column) if numeric_field else _text(column)
    if cc.id:
        arrays["id"] = _text(rows[cc.id])
    if year is not None:
        arrays["year"] = year[keep]
        if month is not None:
            arrays["month"] = month[keep]
    geo_km = 1.0
    if geo is not None:
        lat, lon = _numbers(rows[geo[0]]), _numbers(rows[geo[1]])
        arrays["lat"], arrays["lon"] = lat, lon
        centre = np.radians([np.nanmedian(lat), np.nanmedian(lon)])
        km = haversine_km(centre[0], centre[1], np.radians(lat), np.radians(lon))
        geo_km = float(np.nanmedian(km)) if np.isfinite(km).any() else 1.0
        geo_km = geo_km if geo_km > 0 else 1.0
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    data = buffer.getvalue()
    method = (
        f"Importance-weighted distance over the model's {len(weights)} most important "
        "features (numbers standardised on the model's scale, a category counts 1 when it "
        "differs; weights = normalised mean |SHAP|)"
        + (
            f", plus great-circle distance (weight {geo_weight:.3f} per {geo_km:.2f} km, "
            + ("the config's geo_share)" if cc.geo_share is not None else "its importance)")
            if geo
            else ""
        )
        + "."
    )
    spec = ComparablesSpec(
        sha256=sha256_hex(data),
        bytes=len(data),
        rows=len(rows),
        features=weights,
        fields=list(cc.fields),
        id_column=cc.id,
        date_columns=(date.year, date.month) if date else None,
        geo_columns=geo,
        geo_weight=geo_weight,
        geo_km=geo_km,
        method=method,
    )
    return manifest.model_copy(update={"comparables": spec}), data


def _codes(
    manifest: Manifest, categorical: np.ndarray, names: list[str], index: dict[str, int]
) -> np.ndarray:
    """[rows, features] code of each sale's category; -2 for one training never saw, so it
    never equals a query's unseen category (-1)."""
    codes = np.empty((categorical.shape[0], len(names)), dtype=np.int32)
    for j, name in enumerate(names):
        cats = {c: i for i, c in enumerate(manifest.input.categorical[index[name]].categories)}
        column = categorical[:, index[name]].tolist()
        codes[:, j] = np.fromiter((cats.get(v, -2) for v in column), np.int32, len(column))
    return codes
