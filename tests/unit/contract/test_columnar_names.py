"""One naming rule for a columnar body's errors (`columnar_field`): the validator's 400
and predict's 422 for a row whose answer is not finite both name ``inputs.<feature>[i]``."""

from __future__ import annotations

import pytest

from estate.contract.instances import columnar_field


@pytest.mark.parametrize(
    ("row_field", "column_field"),
    [
        ("instances[3].area", "inputs.area[3]"),
        ("instances[0].Lot.Area", "inputs.Lot.Area[0]"),  # dots inside a feature name
        ("instances[12].a\nb", "inputs.a\nb[12]"),
        ("instances[3]", "instances[3]"),  # the row itself, no feature: unchanged
        ("inputs", "inputs"),
    ],
)
def test_a_row_field_is_named_as_its_column(row_field: str, column_field: str) -> None:
    assert columnar_field(row_field) == column_field
