"""The model card in every bundle, and readable feature labels, on the tiny Ames bundle
(tests/conftest.py's session fixture: no extra training)."""

from __future__ import annotations

import gzip
import itertools
import shutil
from pathlib import Path
from urllib.parse import urljoin

import pytest

from estate.contract.bundle import Manifest, sha256_hex
from estate.contract.errors import BundleError
from estate.storage.registry import read_bundle
from estate.storage.store import LocalStore
from estate.training.card import METHOD_NAMES

REPO = Path(__file__).resolve().parents[3]


def card_text(store: Path, manifest: Manifest) -> str:
    return (store / "models" / "ames" / manifest.version / "model_card.md").read_text()


def test_the_card_states_data_metrics_gates_interval_parity_and_limits(
    ames_store: Path, ames_manifest: Manifest
) -> None:
    card = ames_manifest.model_card
    assert card is not None
    text = card_text(ames_store, ames_manifest)
    assert sha256_hex(text.encode()) == card.sha256
    assert len(text.encode()) == card.bytes
    # Data: source, its card, rows, period, target
    assert card.data_source.endswith("ames.csv.gz")
    assert card.data_source in text
    assert card.data_card == "data/README.md"
    assert "Data card: `data/README.md`" in text
    assert card.rows == ames_manifest.lineage.rows_used == 2925
    assert f"{card.rows:,} used of 2,930" in text
    assert card.period == "2006-01 to 2010-07"
    assert "Period: 2006-01 to 2010-07" in text
    assert card.target == "price"
    assert card.target_range is not None
    assert 10_000 < card.target_range[0] < card.target_range[1] < 1_000_000
    # Every candidate's CV and holdout metric, the chosen one marked
    for c in ames_manifest.candidates:
        row = next(line for line in text.splitlines() if line.startswith(f"| {c.name}"))
        assert f"{c.cv_metrics['rmse_log']:.4g}" in row
        assert f"{c.holdout_metrics['rmse_log']:.4g}" in row
    assert f"| {ames_manifest.chosen} (chosen) |" in text
    # Gates and verdict
    promotion = ames_manifest.promotion
    assert promotion is not None
    for gate in promotion.gates:
        assert f"| {gate.name} | {'yes' if gate.passed else 'no'} |" in text
    assert f"Verdict: **{promotion.decision}**" in text
    # Interval and coverage by fifth: the fifths hold every holdout row, and their
    # coverages average (by rows) to the overall holdout coverage.
    interval = ames_manifest.interval
    assert interval is not None
    assert card.interval_by_fifth is not None
    fifths = card.interval_by_fifth
    assert len(fifths) == 5
    assert sum(f.rows for f in fifths) == ames_manifest.training["rows_holdout"]
    assert all(a.upper <= b.lower for a, b in itertools.pairwise(fifths))
    mean = sum(f.coverage * f.rows for f in fifths) / sum(f.rows for f in fifths)
    assert mean == pytest.approx(interval.served_coverage)
    assert f"Holdout coverage {interval.served_coverage:.1%}" in text
    # The methods compared on the same holdout, as training measured them
    assert interval.comparison is not None
    assert [r.method for r in interval.comparison] == ["cross_conformal", "normalized_conformal"]
    for row in interval.comparison:
        line = next(t for t in text.splitlines() if t.startswith(f"| {METHOD_NAMES[row.method]}"))
        assert f"| {row.coverage:.1%} |" in line
        assert f"{row.median_relative_width:.1%}" in line
        assert all(f"| {f.coverage:.1%} |" in line for f in row.by_fifth)
    served = next(r for r in interval.comparison if r.served)
    assert [f.coverage for f in served.by_fifth] == [f.coverage for f in fifths]
    assert "Decision threshold" not in text
    # Parity, intended use, limits (config's and the defaults), labelled training ranges
    assert f"max relative {ames_manifest.parity.max_rel_diff:.2e}" in text
    assert "## Intended use" in text
    assert card.intended_use in text
    assert "- There is no rent model." in text
    assert any("area <= 4000" in limit for limit in card.limits)
    assert "| Living area (`area`) |" in text
    assert {r.feature for r in card.training_ranges} <= set(ames_manifest.input.names())


@pytest.mark.parametrize("damage", ["alter", "truncate", "remove"])
def test_a_damaged_card_is_refused_like_the_model(
    ames_store: Path, ames_manifest: Manifest, tmp_path: Path, damage: str
) -> None:
    store = tmp_path / "store"
    shutil.copytree(ames_store, store)
    path = store / "models" / "ames" / ames_manifest.version / "model_card.md"
    text = path.read_bytes()
    if damage == "alter":  # same length, one figure changed: only the checksum sees it
        path.write_bytes(text.replace(b"Verdict: **promote**", b"Verdict: **PROMOTE**"))
        assert path.stat().st_size == len(text)
    elif damage == "truncate":
        path.write_bytes(text[:-10])
    else:
        path.unlink()
    expected = "missing" if damage == "remove" else "truncated or altered"
    with pytest.raises(BundleError, match=rf"model_card\.md.*{expected}|{expected}.*"):
        read_bundle(LocalStore(store), "ames")


def test_write_bundle_keeps_card_and_manifest_together(ames_store: Path, tmp_path: Path) -> None:
    from estate.storage.registry import write_bundle

    bundle = read_bundle(LocalStore(ames_store), "ames")
    assert bundle.card_bytes is not None
    target = LocalStore(tmp_path)
    args = (bundle.model_bytes, bundle.explainer_bytes)
    with pytest.raises(BundleError, match="come together"):
        write_bundle(target, bundle.manifest, *args)
    with pytest.raises(BundleError, match="truncated or altered"):
        write_bundle(target, bundle.manifest, *args, bundle.card_bytes + b" ")
    write_bundle(target, bundle.manifest, *args, bundle.card_bytes, bundle.comparables_bytes)
    assert read_bundle(target, "ames", bundle.manifest.version).card_bytes == bundle.card_bytes


def test_labels_reach_the_manifest_and_the_instance_schema(ames_manifest: Manifest) -> None:
    from estate.contract.instances import instance_adapter, instance_json_schema

    area = next(f for f in ames_manifest.input.numeric if f.name == "area")
    assert (area.label, area.unit, area.description) == ("Living area", "sq ft", "Above ground")
    hood = next(f for f in ames_manifest.input.categorical if f.name == "Neighborhood")
    assert hood.label == "Neighbourhood"
    labels = ames_manifest.input.labels()
    assert {k: labels[k] for k in ("area", "Overall.Qual", "Neighborhood", "Total.SF")} == {
        "area": "Living area",  # the test config's own label, not the shipped one
        "Overall.Qual": "Overall quality",
        "Neighborhood": "Neighbourhood",
        "Total.SF": "Total floor area",  # a derived feature's label (tests/conftest.py)
    }
    assert labels["Lot.Area"] == "Lot area"  # from the shipped config (with_ames_labels)
    assert "Age" not in labels  # a derived feature no config labels
    props = instance_json_schema(instance_adapter(ames_manifest.input))["properties"]
    assert props["area"]["title"] == "Living area"
    assert props["area"]["description"].startswith("Above ground. Number (sq ft); training range")
    assert props["Neighborhood"]["title"] == "Neighbourhood"
    numeric = [
        f.model_copy(update={"label": None}) if f.name == "Lot.Area" else f
        for f in ames_manifest.input.numeric
    ]
    schema = ames_manifest.input.model_copy(update={"numeric": numeric})
    props = instance_json_schema(instance_adapter(schema))["properties"]
    assert props["Lot.Area"]["title"] == "Lot.Area"  # no label: pydantic's default, the name


def test_every_shipped_config_validates_and_ames_documents_its_form_fields() -> None:
    from estate.training.config import load_config

    for path in sorted((REPO / "configs").glob("*.toml")):
        config = load_config(path)
        assert config.data_card == "data/README.md", path
        assert config.intended_use, path
    ames = load_config(REPO / "configs" / "ames.toml")
    # The web form's key fields and chat's key features all have labels.
    web = (REPO / "web" / "app.js").read_text().split("KEY_FIELDS = [", 1)[1].split("]", 1)[0]
    form = [name.strip().strip('"') for name in web.replace("\n", "").split(",") if name.strip()]
    assert len(form) == 12
    with gzip.open(REPO / "data" / "ames.csv.gz", "rt") as data:
        columns = data.readline().strip().split(",")
    documented = set(ames.features)
    assert set(form) <= documented
    assert set(columns) - documented == {"Order", "PID", "price"}
    assert any("rent model" in limit for limit in ames.limits)


@pytest.mark.parametrize("target", ["predict", "explain", "chat"])
def test_every_function_links_the_card_and_serves_it(
    serving_env: pytest.MonkeyPatch, ames_store: Path, ames_manifest: Manifest, target: str
) -> None:
    from functions_framework import create_app

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    api = create_app(target=target, source=str(REPO / "main.py")).test_client()
    info = api.get("/").get_json()
    card = ames_manifest.model_card
    assert card is not None
    assert info["model_card"] == {
        "file": "model_card.md",
        "url": "./model_card.md",  # relative to the GET's URL (serving/test_card_link.py)
        "sha256": card.sha256,
        "bytes": card.bytes,
    }
    answer = api.get(urljoin("/", info["model_card"]["url"]))
    assert answer.status_code == 200
    assert answer.mimetype == "text/markdown"
    assert answer.get_data(as_text=True) == card_text(ames_store, ames_manifest)
    assert answer.headers["X-Model-Version"] == ames_manifest.version


def test_explain_and_chat_name_features_by_their_labels(
    serving_env: pytest.MonkeyPatch, ames_store: Path
) -> None:
    import json

    from functions_framework import create_app

    serving_env.setenv("ESTATE_ARTIFACTS", str(ames_store))
    house = json.loads((REPO / "examples" / "predict_ames.json").read_text())["instances"][0]
    explain = create_app(target="explain", source=str(REPO / "main.py")).test_client()
    (item,) = explain.post("/", json={"instances": [house]}).get_json()["explanations"]
    by_name = {c["feature"]: c for c in item["contributions"]}
    assert by_name["area"]["label"] == "Living area"
    assert by_name["area"]["unit"] == "sq ft"
    assert by_name["Overall.Qual"]["label"] == "Overall quality"
    assert by_name["Lot.Area"]["label"] == "Lot area"
    assert "label" not in by_name["Age"]  # no label in the config: the name alone
    chat = create_app(target="chat", source=str(REPO / "main.py")).test_client()
    body = {"messages": [{"role": "user", "content": "What drives its value?"}], "property": house}
    answer = chat.post("/", json=body).get_json()
    drivers = answer["facts"]["drivers"]["items"]
    # Total.SF (a derived feature with a label) now carries much of area's weight.
    labelled = [d for d in drivers if d["feature"] in ("area", "Overall.Qual", "Total.SF")]
    assert labelled, drivers
    for d in labelled:
        assert f"- {d['label']} = " in answer["reply"]
        assert f"- {d['feature']} = " not in answer["reply"]
