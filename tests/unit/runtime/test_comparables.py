"""Comparable sales on the tiny Ames bundle (tests/conftest.py trains it once per session):
the table training writes and the similarity the runtime computes (the registry's checks
of the table and its loading: test_comparables_bundle.py)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _comparables import arrays

import estate.runtime.comparables as comparables_module
from estate.contract.bundle import Manifest, sha256_hex
from estate.runtime.comparables import format_value
from estate.runtime.serving_model import ServingModel
from estate.runtime.similarity import chord_km, unit_vectors
from estate.storage.registry import Bundle, read_bundle
from estate.storage.store import LocalStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bundle(ames_store: Path) -> Bundle:
    return read_bundle(LocalStore(ames_store), "ames")


@pytest.fixture(scope="module")
def model(bundle: Bundle) -> ServingModel:
    return ServingModel(
        bundle.manifest, bundle.model_bytes, 1, comparables_bytes=bundle.comparables_bytes
    )


@pytest.fixture(scope="module")
def sales() -> list[dict[str, str]]:
    """The Ames file's rows that training used (area <= 4000), as text."""
    import csv

    with gzip.open(REPO / "data" / "ames.csv.gz", "rt", newline="") as handle:
        return [r for r in csv.DictReader(handle) if float(r["area"]) <= 4000]


def instance(row: dict[str, str], manifest: Manifest, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A data row as a predict instance (numbers as numbers, blanks as null)."""
    numeric = {f.name for f in manifest.input.numeric}
    out: dict[str, Any] = {}
    for name in manifest.input.names():
        if name in drop:
            continue
        text = row[name].strip()
        out[name] = (float(text) if text else None) if name in numeric else (text or None)
    return out


def test_the_table_holds_every_used_sale_as_plain_arrays(bundle: Bundle) -> None:
    spec = bundle.manifest.comparables
    assert spec is not None
    assert bundle.comparables_bytes is not None
    assert spec.bytes == len(bundle.comparables_bytes)
    assert spec.sha256 == sha256_hex(bundle.comparables_bytes)
    a = arrays(bundle.comparables_bytes)  # allow_pickle=False: no object array can load
    assert all(v.dtype.kind != "O" for v in a.values())
    assert spec.rows == bundle.manifest.lineage.rows_used == len(a["price"]) == 2925
    assert a["id"].dtype.kind == "U"
    assert a["field_4"].dtype.kind == "U"
    assert spec.fields == ["area", "Bedroom.AbvGr", "Full.Bath", "Year.Built", "Neighborhood"]
    assert spec.geo_columns == ("Latitude", "Longitude")
    assert spec.date_columns == ("Yr.Sold", "Mo.Sold")
    # The weights: the explainer's most important features, normalised with geography's
    # share to 1; coordinates and sale dates are not among them.
    from estate.training.comparables import raw_importance

    importance = raw_importance(bundle.manifest)  # derived features shared among inputs
    importance = dict(sorted(importance.items(), key=lambda kv: -kv[1]))
    assert sum(spec.features.values()) + spec.geo_weight == pytest.approx(1.0)
    assert not {"Latitude", "Longitude", "Yr.Sold", "Mo.Sold"} & set(spec.features)
    ranked = [n for n in importance if n not in {"Latitude", "Longitude", "Yr.Sold", "Mo.Sold"}]
    assert list(spec.features) == ranked[: len(spec.features)]
    assert len(spec.features) == 12


def test_a_sale_from_the_data_finds_itself_first(
    model: ServingModel, sales: list[dict[str, str]]
) -> None:
    """Training positions the table with the same encoding serving uses for a request."""
    rows = [sales[0], sales[1234], sales[-1]]
    numeric, categorical, _ = model.pack([instance(r, model.manifest) for r in rows])
    found = model.comparables(numeric, categorical, 5)
    for row, nearest in zip(rows, found, strict=True):
        first = nearest[0]
        assert first["id"] == row["PID"]
        assert first["price"] == float(row["price"])
        assert first["distance"] == pytest.approx(0.0, abs=1e-5)
        assert first["km"] == pytest.approx(0.0, abs=1e-6)
        assert first["differences"] == []
        assert first["sale_date"] == f"{row['Yr.Sold']}-{int(row['Mo.Sold']):02d}"
        assert first["fields"]["area"] == int(row["area"])
        assert first["fields"]["Neighborhood"] == row["Neighborhood"]
        distances = [s["distance"] for s in nearest]
        assert distances == sorted(distances)
        assert len(nearest) == 5


def test_the_distance_is_the_documented_formula(
    model: ServingModel, bundle: Bundle, sales: list[dict[str, str]]
) -> None:
    """Recomputed here from the raw values: Σ w |Δ encoded| / std + Σ w [category differs]
    + geo_weight x km / geo_km, for every sale the search returns."""
    spec = bundle.manifest.comparables
    assert spec is not None
    assert bundle.comparables_bytes is not None
    a = arrays(bundle.comparables_bytes)
    by_name = {f.name: f for f in bundle.manifest.input.numeric}
    query = instance(sales[77], model.manifest) | {"area": 2000.0, "Neighborhood": "NoRidge"}
    numeric, categorical, _ = model.pack([query])
    (found,) = model.comparables(numeric, categorical, 20)
    ids = a["id"].tolist()

    def enc(name: str, value: float) -> float:
        f = by_name[name]
        value = f.impute if math.isnan(value) else value
        return math.log(max(value, 0.0) + 1.0) if f.log1p else value

    names = a["num_names"].tolist()
    table = np.array(
        [[enc(n, v) for n, v in zip(names, row, strict=True)] for row in a["num_raw"].tolist()]
    )
    std = table.std(axis=0)
    cat_names = a["cat_names"].tolist()
    for sale in found:
        s = ids.index(sale["id"])
        expected = sum(
            spec.features[n]
            * abs(enc(n, math.nan if query[n] is None else float(query[n])) - table[s, j])
            / std[j]
            for j, n in enumerate(names)
        )
        expected += sum(
            spec.features[n]
            for j, n in enumerate(cat_names)
            if model.manifest.input.categorical[
                [c.name for c in model.manifest.input.categorical].index(n)
            ].categories[a["cat_codes"][s, j]]
            != query[n]
        )
        lat, lon = math.radians(query["Latitude"]), math.radians(query["Longitude"])
        lat2, lon2 = math.radians(a["lat"][s]), math.radians(a["lon"][s])
        h = (
            math.sin((lat2 - lat) / 2) ** 2
            + math.cos(lat) * math.cos(lat2) * math.sin((lon2 - lon) / 2) ** 2
        )
        km = 2 * 6371.0088 * math.asin(math.sqrt(h))  # haversine, written out
        assert sale["km"] == pytest.approx(km, abs=1e-3)
        expected += spec.geo_weight * km / spec.geo_km
        assert sale["distance"] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_main_differences_name_the_change_with_labels_and_units(
    model: ServingModel, sales: list[dict[str, str]]
) -> None:
    row = sales[10]
    changed = instance(row, model.manifest) | {"area": float(row["area"]) + 600}
    numeric, categorical, _ = model.pack([changed])
    (found,) = model.comparables(numeric, categorical, 3)
    itself = next(s for s in found if s["id"] == row["PID"])
    (diff,) = itself["differences"]  # only the area differs
    area = int(row["area"])
    assert diff == {
        "feature": "area",
        "label": "Living area",
        "unit": "sq ft",
        "comparable": area,
        "this": area + 600,
        "text": f"Living area {area:,} vs {area + 600:,} sq ft",
    }
    spec = model.manifest.comparables
    assert spec is not None
    numbers = {f.name for f in model.manifest.input.numeric}
    other = next(n for n in spec.features if n in numbers and n != "area")
    moved = instance(row, model.manifest) | {"Neighborhood": "StoneBr", other: 99000.0}
    numeric, categorical, _ = model.pack([moved])
    (found,) = model.comparables(numeric, categorical, 20)
    itself = next(s for s in found if s["id"] == row["PID"])
    texts = [d["text"] for d in itself["differences"]]
    assert f"Neighbourhood {row['Neighborhood']} vs StoneBr" in texts
    assert any(d["feature"] == other and d["this"] == 99000 for d in itself["differences"])
    assert len(itself["differences"]) <= 3


def test_a_house_without_coordinates_is_compared_without_geography(
    model: ServingModel, sales: list[dict[str, str]]
) -> None:
    numeric, categorical, _ = model.pack(
        [instance(sales[5], model.manifest, drop=("Latitude", "Longitude"))]
    )
    (found,) = model.comparables(numeric, categorical, 5)
    assert all(s["km"] is None for s in found)
    assert found[0]["id"] == sales[5]["PID"]  # the rest still pins it down


def test_batches_are_chunked_and_agree_with_single_rows(
    model: ServingModel, sales: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [instance(r, model.manifest) for r in sales[:7]]
    numeric, categorical, _ = model.pack(rows)
    singles = [
        model.comparables(numeric[i : i + 1], categorical[i : i + 1], 4)[0] for i in range(7)
    ]
    monkeypatch.setattr(comparables_module, "CHUNK_CELLS", 1)  # one row a chunk
    assert model.comparables(numeric, categorical, 4) == singles
    monkeypatch.undo()
    assert model.comparables(numeric, categorical, 4) == singles
    assert model.comparables(numeric, categorical, 0) == [[]] * 7
    table = model.comparable_sales
    assert table is not None
    assert len(model.comparables(numeric[:1], categorical[:1], table.rows + 5)[0]) == table.rows


def test_the_chord_formula_is_the_haversine_distance() -> None:
    rng = np.random.default_rng(0)
    lat, lon = np.radians(rng.uniform(-80, 80, 50)), np.radians(rng.uniform(-180, 180, 50))
    km = chord_km(unit_vectors(lat[:5], lon[:5]), unit_vectors(lat, lon).T)
    h = (
        np.sin((lat[None] - lat[:5, None]) / 2) ** 2
        + np.cos(lat[:5, None]) * np.cos(lat[None]) * np.sin((lon[None] - lon[:5, None]) / 2) ** 2
    )
    assert np.allclose(km, 2 * 6371.0088 * np.arcsin(np.sqrt(h)), atol=1e-6)


def test_values_read_as_people_write_them() -> None:
    assert format_value(1710.0, "sq ft", True) == "1,710 sq ft"
    assert format_value(12500.0, "USD") == "$12,500"
    assert format_value(3.0, "count") == "3"
    assert format_value(1995.0, "year", plain=True) == "1995"
    assert format_value(float("nan"), "sq ft") == "?"
    assert format_value("CollgCr", None) == "CollgCr"


def test_a_house_is_compared_on_what_it_sends(
    model: ServingModel, sales: list[dict[str, str]]
) -> None:
    """Features a house does not send stay out of its distance (no imputed medians), on
    the one-row path and the batch path alike."""
    sent = {"area": 1450.0, "Year.Built": 1962.0, "Neighborhood": "NAmes"}
    packed = model.pack_flags([sent])
    (found,) = model.comparables(packed.numeric, packed.categorical, 10, packed.missing_category)
    for sale in found:
        assert {d["feature"] for d in sale["differences"]} <= set(sent)
        assert sale["km"] is None
    assert all(s["fields"]["Neighborhood"] == "NAmes" for s in found)
    nearest = found[0]
    assert abs(nearest["fields"]["area"] - 1450) < 100
    assert abs(nearest["fields"]["Year.Built"] - 1962) <= 3
    # A category not sent is no difference, with the packing's flags; without them it is
    # the imputed mode, which then counts.
    bare = model.pack_flags([{"area": 1450.0, "Year.Built": 1962.0}])
    (flagged,) = model.comparables(bare.numeric, bare.categorical, 20, bare.missing_category)
    assert not any(d["feature"] == "Neighborhood" for s in flagged for d in s["differences"])
    (unflagged,) = model.comparables(bare.numeric, bare.categorical, 20)
    mode = next(c.impute for c in model.categorical if c.name == "Neighborhood")
    assert all(s["fields"]["Neighborhood"] == mode for s in unflagged[:5])
    batch = model.pack_flags([sent, instance(sales[3], model.manifest), {"area": 900.0}])
    together = model.comparables(batch.numeric, batch.categorical, 10, batch.missing_category)
    for i in range(3):
        alone = model.comparables(
            batch.numeric[i : i + 1],
            batch.categorical[i : i + 1],
            10,
            batch.missing_category[i : i + 1],
        )[0]
        assert [s["id"] for s in together[i]] == [s["id"] for s in alone]
        assert [s["distance"] for s in together[i]] == pytest.approx(
            [s["distance"] for s in alone], abs=1e-5
        )
    assert together[0] == found


def test_absurd_inputs_give_finite_distances(model: ServingModel) -> None:
    """A house far outside the data is far from every sale, in finite numbers JSON can carry."""
    rows = [
        {"area": 1e308, "Lot.Area": -1e308, "Year.Built": 1e300},
        {"area": 1500.0, "Latitude": 1e308, "Longitude": -1e308},
        {"area": 1500.0, "Latitude": 91.0, "Longitude": 720.0},
    ]
    packed = model.pack_flags(rows)
    found = model.comparables(packed.numeric, packed.categorical, 3, packed.missing_category)
    for sales in found:
        assert len(sales) == 3
        for sale in sales:
            assert math.isfinite(sale["distance"])
            assert sale["km"] is None or math.isfinite(sale["km"])
            json.dumps(sale, allow_nan=False)
