"""The ``[comparables]`` section of a data-set config: where it applies, what it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from estate.contract.errors import ConfigError
from estate.training.config import load_config

REPO = Path(__file__).resolve().parents[3]


def config_with(tmp_path: Path, base: str, section: str) -> Path:
    text = (REPO / "configs" / base).read_text()
    head, sep, rest = text.partition("\n[[candidates]]")
    head = head.split("\n[comparables]")[0]  # the shipped section, replaced by `section`
    path = tmp_path / base
    path.write_text(head + "\n" + section + "\n" + sep + rest)
    return path


def test_every_shipped_config_says_whether_it_has_comparables() -> None:
    ames = load_config(REPO / "configs" / "ames.toml").comparables
    assert ames is not None
    assert ames.latitude == "Latitude"
    assert ames.longitude == "Longitude"
    assert ames.id == "PID"
    for name in ("quick_sale.toml", "mortgage_arrears.toml"):  # classification: no prices
        assert load_config(REPO / "configs" / name).comparables is None


def test_a_classification_config_cannot_declare_comparables(tmp_path: Path) -> None:
    path = config_with(tmp_path, "quick_sale.toml", '[comparables]\nfields = ["living_area"]')
    with pytest.raises(ConfigError, match="regression only: comparable sales need a sale price"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[comparables]\nfields = ["area"]\nlatitude = "Latitude"', "both latitude and longitude"),
        ("[comparables]\nfields = []", "at least 1 item"),
        ('[comparables]\nfields = ["area"]\ngeo_share = 1.0', "less than 1"),
        ('[comparables]\nfields = ["area"]\nfeatures = 0', "greater than or equal to 1"),
        ('[comparables]\nfields = ["area"]\ncolour = "red"', "Extra inputs are not permitted"),
    ],
)
def test_a_bad_section_is_refused_naming_the_key(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_with(tmp_path, "ames.toml", section))
