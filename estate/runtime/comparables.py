"""Comparable sales: the training sales most like a house, and how they differ from it.

A bundle may carry ``comparables.npz`` (numpy arrays only, loaded with
``allow_pickle=False``; `estate.contract.bundle.ComparablesSpec` describes it): the sale
price, date, identity, coordinates and a few readable fields of each training sale, plus
the sale's position in the similarity space (`estate.runtime.similarity` states the
rule). `Comparables.nearest` finds the k nearest sales of packed rows (the graph's two
inputs), vectorised and in bounded chunks. The "main differences" of a comparable are the
terms of its sum that are largest: where it differs most in what the model prices.

Numpy only: no pandas, no scikit-learn, no HTTP.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from estate.contract.bundle import ComparablesSpec, Manifest
from estate.contract.errors import BundleError
from estate.runtime.similarity import chord_km, encoded, unit_vectors

#: Most comparables one row may ask for (``parameters.comparables``).
MAX_K: Final = 20
#: Main differences listed per comparable.
DIFFERENCES: Final = 3
#: Largest |position| of a row's feature: absurd inputs stay finite (x 50 features < 3e38).
FAR: Final = 1e30
#: Code of a category a row did not send (never equal to a sale's code).
UNKNOWN: Final = -3
#: Distance cells computed at once (rows x sales): bounds a batch's memory (~8 MB).
CHUNK_CELLS: Final = 1 << 20

#: Units not worth printing after a value ("Bedrooms 3 vs 4", "Year built 1995 vs 2001").
_SILENT_UNITS = frozenset({"count", "year", "month", "1-10", "degrees"})


def format_value(
    value: float | str | None, unit: str | None, integer: bool = False, plain: bool = False
) -> str:
    """A value as people read it: 1,710 sq ft, $12,500, 7, 'CollgCr'; '?' when unknown;
    `plain`: no thousands separator (years: 1995)."""
    if value is None:
        return "?"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "?"
    sep = "" if plain else ","
    whole = integer or float(value).is_integer()
    text = f"{value:{sep}.0f}" if whole else f"{value:{sep}.4g}"
    if unit == "USD":
        return "$" + text if value >= 0 else "-$" + text.lstrip("-")
    if unit and unit not in _SILENT_UNITS:
        return f"{text} {unit}"
    return text


def _json_number(value: float) -> float | int | None:
    if value != value:  # NaN: missing
        return None
    return int(value) if value.is_integer() and -(2**53) < value < 2**53 else value


@dataclass(frozen=True)
class _Numeric:
    name: str
    column: int  # in the packed numeric input
    impute: float
    log1p: bool
    integer: bool


@dataclass(frozen=True)
class _Categorical:
    name: str
    column: int  # in the packed categorical input
    codes: dict[str, int]  # training category → code


class Comparables:
    """One bundle's table of training sales, ready to search (loaded once per instance)."""

    def __init__(self, manifest: Manifest, data: bytes) -> None:
        spec = manifest.comparables
        if spec is None:
            raise BundleError(f"{manifest.name}/{manifest.version} has no comparables table.")
        self.spec: ComparablesSpec = spec
        where = f"{spec.file} of {manifest.name}/{manifest.version}"
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{where} is not a readable numpy archive: {exc}") from exc
        try:
            self._load(manifest, a)
        except (KeyError, ValueError, IndexError) as exc:
            raise BundleError(
                f"{where} does not match its manifest ({exc}); re-export the bundle."
            ) from None

    def _load(self, manifest: Manifest, a: dict[str, np.ndarray]) -> None:
        spec = self.spec
        numeric = {f.name: (j, f) for j, f in enumerate(manifest.input.numeric)}
        categorical = {c.name: (j, c) for j, c in enumerate(manifest.input.categorical)}
        self.labels = manifest.input.labels()
        self.units = {f.name: f.unit for f in manifest.input.numeric if f.unit}
        n = int(spec.rows)
        self.price = a["price"].astype(np.float64)
        if self.price.shape != (n,):
            raise ValueError(f"price has shape {self.price.shape}, expected ({n},)")
        self.num = [
            _Numeric(str(name), numeric[str(name)][0], f.impute, f.log1p, f.integer)
            for name in a["num_names"].tolist()
            for f in [numeric[str(name)][1]]
        ]
        self.cat = [
            _Categorical(
                str(name),
                categorical[str(name)][0],
                {c: i for i, c in enumerate(categorical[str(name)][1].categories)},
            )
            for name in a["cat_names"].tolist()
        ]
        self._cat_text = [list(categorical[c.name][1].categories) for c in self.cat]
        m, c = len(self.num), len(self.cat)
        self._mean = a["num_mean"].astype(np.float64).reshape(m)
        self._scale = a["num_scale"].astype(np.float64).reshape(m)  # weight / std
        self._impute = np.array([f.impute for f in self.num], dtype=np.float64)
        self._log1p = np.array([f.log1p for f in self.num], dtype=bool)
        self._num_cols = np.array([f.column for f in self.num], dtype=np.int64)
        position = a["num_position"].astype(np.float32).reshape(n, m)
        self._pos_t = np.ascontiguousarray(position.T)  # [m, n]: one contiguous row a feature
        self.num_raw = a["num_raw"].astype(np.float64).reshape(n, m)
        self.cat_weight = a["cat_weight"].astype(np.float32).reshape(c)
        self._codes_t = np.ascontiguousarray(a["cat_codes"].astype(np.int32).reshape(n, c).T)
        self.fields = [str(f) for f in a["field_names"].tolist()]
        # Each sale's fields, price, id, date and coordinates are converted to JSON values
        # only for the sales an answer lists (k of them), not for the whole table at load:
        # converting all 2,925 Ames sales was ~10 ms of every cold start, comparables asked
        # for or not.
        self._field_arrays: list[np.ndarray] = []
        for i in range(len(self.fields)):
            values = a[f"field_{i}"]
            if values.shape != (n,):
                raise ValueError(f"field_{i} has shape {values.shape}, expected ({n},)")
            self._field_arrays.append(values if values.dtype.kind == "U" else values.astype(float))
        self._ids = a["id"].reshape(n) if "id" in a else None
        self._year = a["year"].astype(np.int64).reshape(n) if "year" in a else None
        self._month = a["month"].astype(np.int64).reshape(n) if "month" in a else None
        self.geo: tuple[int, int] | None = None
        if spec.geo_columns is not None and "lat" in a:
            lat, lon = a["lat"].astype(np.float64).reshape(n), a["lon"].astype(np.float64)
            self._lat, self._lon = lat, lon.reshape(n)
            self._xyz_t = unit_vectors(np.radians(lat), np.radians(lon.reshape(n))).T.copy()
            self.geo = (numeric[spec.geo_columns[0]][0], numeric[spec.geo_columns[1]][0])
            self._geo_scale = spec.geo_weight / spec.geo_km
        self.rows = n
        self._cat_total = float(self.cat_weight.sum())

    def positions(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        missing_category: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Packed rows in the similarity space: (weighted numbers [r, m], NaN where the
        row has no value; category codes [r, c], -1 for a category training never saw,
        `UNKNOWN` where `missing_category` says the row sent none; (lat, lon) radians
        [r, 2], NaN where a row has no coordinates, or None without geography)."""
        x = numeric[:, self._num_cols] if self.num else np.zeros((numeric.shape[0], 0))
        with np.errstate(all="ignore"):  # an absurd input is far from every sale, not inf
            q = (encoded(x, self._impute, self._log1p) - self._mean) * self._scale
        q = np.clip(q, -FAR, FAR).astype(np.float32)  # finite in float32, sums included
        q[np.isnan(x)] = np.nan  # not sent: left out of the distance, not imputed
        rows = numeric.shape[0]
        codes = np.empty((rows, len(self.cat)), dtype=np.int32)
        for j, c in enumerate(self.cat):
            get = c.codes.get
            codes[:, j] = np.fromiter(
                (get(v, -1) for v in categorical[:, c.column].tolist()), np.int32, count=rows
            )
            if missing_category is not None:
                codes[missing_category[:, c.column], j] = UNKNOWN
        geo = None
        if self.geo is not None:
            geo = np.radians(numeric[:, list(self.geo)].astype(np.float64))
        return q, codes, geo

    def nearest(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        k: int,
        missing_category: np.ndarray | None = None,
    ) -> list[list[dict[str, Any]]]:
        """The `k` most similar sales of each packed row, nearest first (JSON-ready).

        A feature a row does not have (a NaN number; a category `missing_category`, the
        packing's flags, marks as not sent) is left out of that row's distance: a house
        is compared on what it says, not on imputed typical values."""
        rows = numeric.shape[0]
        k = min(k, self.rows)
        if k <= 0 or rows == 0:
            return [[] for _ in range(rows)]
        q, codes, geo = self.positions(numeric, categorical, missing_category)
        chunk = max(1, CHUNK_CELLS // (self.rows * max(1, len(self.num))))
        answers: list[list[dict[str, Any]]] = []
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            part_geo = None if geo is None else geo[start:stop]
            dist, km = self._distances(q[start:stop], codes[start:stop], part_geo)
            if k < self.rows:
                top = np.argpartition(dist, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(self.rows), dist.shape)
            order = np.take_along_axis(dist, top, axis=1).argsort(axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            for i in range(stop - start):
                answers.append(
                    self._sales(
                        numeric[start + i],
                        categorical[start + i],
                        q[start + i],
                        codes[start + i],
                        top[i],
                        dist[i, top[i]],
                        None if km is None else km[i, top[i]],
                    )
                )
        return answers

    def _distances(
        self, q: np.ndarray, codes: np.ndarray, geo: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """[rows, sales] distances (float32) and km (None without geography)."""
        known = ~np.isnan(q)
        if known.all():
            dist = np.abs(self._pos_t[None, :, :] - q[:, :, None]).sum(axis=1, dtype=np.float32)
        elif q.shape[0] == 1:  # one row: only its known features
            cols = np.flatnonzero(known[0])
            block = np.abs(self._pos_t[None, cols, :] - q[:, cols, None])
            dist = block.sum(axis=1, dtype=np.float32)
        else:
            block = np.abs(self._pos_t[None, :, :] - np.where(known, q, 0)[:, :, None])
            block *= known[:, :, None]
            dist = block.sum(axis=1, dtype=np.float32)
        if codes.shape[1]:  # Σ w over differing categories = Σ w - Σ w over equal ones
            dist += self._cat_total
            for j in range(codes.shape[1]):
                alike = (self._codes_t[j] == codes[:, j, None]) | (codes[:, j, None] == UNKNOWN)
                dist -= self.cat_weight[j] * alike
        km = None
        if geo is not None:
            placed = np.isfinite(geo).all(axis=1)  # rows that sent their coordinates
            if placed.all():
                km = chord_km(unit_vectors(geo[:, 0], geo[:, 1]), self._xyz_t)
                dist += km * self._geo_scale
            else:
                km = np.full(dist.shape, np.nan)
                if placed.any():
                    some = chord_km(unit_vectors(geo[placed, 0], geo[placed, 1]), self._xyz_t)
                    km[placed] = some
                    dist[placed] += some * self._geo_scale
        return dist, km

    def _sales(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        q: np.ndarray,
        codes: np.ndarray,
        top: np.ndarray,
        dist: np.ndarray,
        km: np.ndarray | None,
    ) -> list[dict[str, Any]]:
        """One row's comparables as JSON objects."""
        terms = np.hstack(
            [
                np.nan_to_num(np.abs(self._pos_t[:, top].T - q)),  # [k, m]; unknown: 0
                self.cat_weight * ((codes != self._codes_t[:, top].T) & (codes != UNKNOWN)),
            ]
        )
        largest = np.argsort(-terms, axis=1, kind="stable")[:, :DIFFERENCES].tolist()
        terms_list = terms.tolist()
        raw = self.num_raw[top].tolist()
        sale_codes = self._codes_t[:, top].T.tolist()
        mine = [float(v) for v in numeric[self._num_cols].tolist()] if self.num else []
        mine = [f.impute if math.isnan(v) else v for f, v in zip(self.num, mine, strict=True)]
        mine_cat = [str(categorical[c.column]) for c in self.cat]
        dists = dist.tolist()
        kms = None if km is None else km.tolist()
        out = []
        for r, s in enumerate(top.tolist()):
            sale: dict[str, Any] = {"price": float(self.price[s])}
            date = self._date(s)
            if date is not None:
                sale["sale_date"] = date
            sale["distance"] = round(dists[r], 6)
            if kms is not None:
                sale["km"] = None if math.isnan(kms[r]) else round(kms[r], 3)
            if self._ids is not None:
                sale["id"] = str(self._ids[s])
            if self.geo is not None:
                sale["latitude"] = float(self._lat[s])
                sale["longitude"] = float(self._lon[s])
            sale["fields"] = {
                name: str(values[s]) if values.dtype.kind == "U" else _json_number(float(values[s]))
                for name, values in zip(self.fields, self._field_arrays, strict=True)
            }
            sale["differences"] = [
                self._difference(j, raw[r], sale_codes[r], mine, mine_cat)
                for j in largest[r]
                if terms_list[r][j] > 1e-6
            ]
            out.append(sale)
        return out

    def _date(self, sale: int) -> str | None:
        """The sale's date as text ('2008-06', or '2008' without a month; None unknown)."""
        if self._year is None:
            return None
        y = int(self._year[sale])
        mo = int(self._month[sale]) if self._month is not None else 0
        return None if y <= 0 else f"{y:04d}-{mo:02d}" if 1 <= mo <= 12 else f"{y:04d}"

    def _difference(
        self, j: int, raw: list[float], codes: list[int], mine: list[float], mine_cat: list[str]
    ) -> dict[str, Any]:
        """Term `j` of a comparable's distance as a readable difference."""
        m = len(self.num)
        theirs: float | str | None
        ours: float | str | None
        if j < m:
            f = self.num[j]
            name, unit = f.name, self.units.get(f.name)
            theirs, ours = _json_number(raw[j]), _json_number(mine[j])
            plain = unit == "year" or "year" in name.lower() or "yr" in name.lower()
            shown = (
                format_value(raw[j], unit if unit == "USD" else None, f.integer, plain),
                format_value(mine[j], unit, f.integer, plain),
            )
        else:
            c = self.cat[j - m]
            code = codes[j - m]
            name, unit = c.name, None
            theirs = self._cat_text[j - m][code] if code >= 0 else "other"
            ours = mine_cat[j - m]
            shown = (str(theirs), str(ours))
        item: dict[str, Any] = {"feature": name}
        if name in self.labels:
            item["label"] = self.labels[name]
        if unit:
            item["unit"] = unit
        item |= {
            "comparable": theirs,
            "this": ours,
            "text": f"{self.labels.get(name, name)} {shown[0]} vs {shown[1]}",
        }
        return item
