"""Config-declared features: good configs load, bad ones fail naming the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estate.contract.errors import ConfigError
from estate.training.config import load_config
from estate.training.encoder import TabularEncoder

HEAD = """
name = "t"
description = "test"
data = "x.csv"
task = "regression"
target = "price"
output_name = "price"
categorical = ["code"]
drop_columns = ["id"]
{extra}

[[candidates]]
name = "ridge"
estimator = "ridge"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(HEAD.format(extra=extra))
    return path


def test_scales_ordinals_and_formulas_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'derived."Total.SF" = "a + b.c"\n'
            'derived.age = "sold - (built)"\n'
            'scales.quality = ["Po", "Fa", "TA", "Gd", "Ex"]\n'
            'ordinal."Kitchen.Qual" = "quality"\n'
            'ordinal.finish = ["Unf", "RFn", "Fin"]\n',
        )
    )
    assert config.derived == {"Total.SF": "a + b.c", "age": "sold - (built)"}
    assert config.ordinal_scales() == {
        "Kitchen.Qual": ["Po", "Fa", "TA", "Gd", "Ex"],
        "finish": ["Unf", "RFn", "Fin"],
    }


def test_a_config_without_them_is_unchanged(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.derived == {}
    assert config.ordinal == {}
    assert config.scales == {}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('derived."Age" = "Yr.Sold ^ Year.Built"', "derived.Age: unexpected '^' at character 9"),
        ('derived.age = ""', "derived.age: a formula must be a non-empty text"),
        ('derived.age = "(a + b"', "derived.age: '(a + b': '(' at character 1 is never closed"),
        ('derived.age = "3 * 4"', "derived.age: '3 * 4' reads no column"),
        ('derived.age = "price / 2"', "derived.age reads ['price']"),
        ('derived.age = "x + 1"\nderived.y = "age * 2"', "derived.y reads ['age']"),
        ('derived.age = "code + 1"', "derived.age reads ['code'], which the config drops"),
        ('derived.age = "id + 1"', "derived.age reads ['id'], which the config drops"),
        ('derived.code = "a + 1"', "derived.code: the name is already a column"),
        ("derived.age = 3", "derived.age"),
        ('ordinal."Kitchen.Qual" = "qualty"', "ordinal.\"Kitchen.Qual\" = 'qualty' names no scale"),
        ("ordinal.q = []", "ordinal.q is empty"),
        ('ordinal.q = ["Po", "Po"]', "ordinal.q repeats ['Po']"),
        ('ordinal.q = ["Po", " Fa"]', "ordinal.q: a level must be non-blank text"),
        ('scales.quality = [""]', "scales.quality: a level must be non-blank"),
        ('ordinal.id = ["a"]', "ordinal names ['id'], which the config drops"),
    ],
)
def test_bad_feature_configs_name_the_key(tmp_path: Path, extra: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, extra))
    assert says in str(caught.value)
    assert "c.toml" in str(caught.value)


def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 4.0] * 5,
            "q": ["Po", "Gd", None, "TA"] * 5,
            "hood": ["x", "y", "x", "y"] * 5,
        }
    )


def test_encoder_refuses_a_training_value_the_scale_does_not_name() -> None:
    frame = sales()
    frame.loc[0, "q"] = "Sup"
    with pytest.raises(ConfigError, match=r"ordinal.q: the data holds \['Sup'\]"):
        TabularEncoder(ordinal={"q": ["Po", "Fa", "TA", "Gd", "Ex"]}).fit(frame)


def test_encoder_refuses_formulas_reading_what_is_not_a_number_column() -> None:
    with pytest.raises(ConfigError, match=r"derived.d = 'a \+ hood' reads \['hood'\]"):
        TabularEncoder(derived={"d": "a + hood"}).fit(sales())
    with pytest.raises(ConfigError, match=r"reads \['nope'\]"):
        TabularEncoder(derived={"d": "nope * 2"}).fit(sales())
    with pytest.raises(ConfigError, match=r"have the names of data columns"):
        TabularEncoder(derived={"a": "a * 2"}).fit(sales())
    with pytest.raises(ConfigError, match=r"Derived feature 'd' has no finite value"):
        TabularEncoder(derived={"d": "a / 0"}).fit(sales())


def test_ordinal_levels_are_formula_inputs() -> None:
    enc = TabularEncoder(ordinal={"q": ["Po", "Fa", "TA", "Gd", "Ex"]}, derived={"d": "q * a"})
    enc.fit(sales())
    (d,) = enc.derived_features
    assert d.inputs == ["q", "a"]
    assert d.formula == "q * a"
    numbers = enc.layout.numbers(*enc.pack(sales()))
    # Po=1, Gd=4, missing=0 (NA), TA=3; a missing `a` is its median (2).
    np.testing.assert_array_equal(numbers[:4, -1], [1.0, 8.0, 0.0, 12.0])
