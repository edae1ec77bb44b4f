"""The similarity space of comparable sales: the distance rule and its arithmetic.

Training places each sale of a bundle's table in this space (`estate.training.comparables`)
and serving places a house in it (`estate.runtime.comparables.Comparables`), with the same
functions, so the two sides measure alike.

Similarity (one rule, also in the README and the OpenAPI document): the distance between
two houses is

    Σ_j w_j |z_j(a) - z_j(b)|  +  Σ_c w_c [category_c(a) != category_c(b)]  +  w_geo km / s

over the model's most important features: ``z`` is a number on the model's own encoded
scale (imputed, log(1 + x) where the graph logs it) divided by its training standard
deviation; a category counts 1 when it differs; the weights are the features' global
importance (mean |SHAP| over training rows, `ExplainerSpec.global_importance`)
normalised to sum to 1, so a feature the model prices more counts more. When the data has
coordinates, latitude and longitude leave the sum and the great-circle distance in km
(haversine's, computed from unit vectors: `chord_km`) takes their share of the weight,
with ``s`` the median distance of a sale to the centre of the data (a house without
coordinates is compared without geography). Sale dates never count (a house being
valued has none), nor do the features a house does not send (it is compared on what it
says, not on imputed typical values).

Numpy only: no pandas, no scikit-learn, no HTTP.
"""

from __future__ import annotations

from typing import Final

import numpy as np

EARTH_KM: Final = 6371.0088


def haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in km between points given in radians (broadcasting)."""
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return np.asarray(2 * EARTH_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """[points, 3] unit vectors of points given in radians."""
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def chord_km(points: np.ndarray, table_t: np.ndarray) -> np.ndarray:
    """[points, sales] great-circle km from unit vectors ([points, 3] and [3, sales]):
    2R asin(chord / 2), the haversine distance to 1e-12 km, with one arcsine a cell
    instead of haversine's four transcendentals (3x faster on a table)."""
    d = table_t[None, :, :] - points[:, :, None]
    chord = np.sqrt((d * d).sum(axis=1))
    return np.asarray(2 * EARTH_KM * np.arcsin(np.minimum(chord * 0.5, 1.0)))


def encoded(x: np.ndarray, impute: np.ndarray, log1p: np.ndarray) -> np.ndarray:
    """Numbers on the model's encoded scale (missing → training median, then log(1 + x)
    where the graph logs), as `estate.runtime.layout` encodes them; training positions
    the table's sales with this too."""
    x = np.where(np.isnan(x), impute, x)
    if log1p.any():
        x = np.where(log1p, np.log(np.maximum(x, 0.0) + 1.0), x)
    return np.asarray(x, dtype=np.float64)
