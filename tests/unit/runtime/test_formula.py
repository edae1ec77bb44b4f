"""The derived-feature formula grammar: what parses, what it computes, what is refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from estate.runtime.formula import MAX_DEPTH, MAX_FORMULA_CHARS, FormulaError, parse

COLUMNS = {
    "a": np.array([1.0, 2.0, 0.0, -3.0]),
    "b": np.array([2.0, 0.0, 0.0, 4.0]),
    "X1st.Flr.SF": np.array([10.0, 20.0, 30.0, 40.0]),
    "Lot Area": np.array([5.0, 5.0, 5.0, 5.0]),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b", [3.0, 2.0, 0.0, 1.0]),
        ("a - b - 1", [-2.0, 1.0, -1.0, -8.0]),  # left-associative
        ("a - (b - 1)", [0.0, 3.0, 1.0, -6.0]),
        ("2 * a + b / 2", [3.0, 4.0, 0.0, -4.0]),  # * and / bind tighter
        ("-a * -b", [2.0, 0.0, 0.0, -12.0]),  # unary minus binds tightest
        ("+a", [1.0, 2.0, 0.0, -3.0]),
        ("X1st.Flr.SF * 0.5e1", [50.0, 100.0, 150.0, 200.0]),  # dotted names, exponent
        ("`Lot Area` + .5", [5.5, 5.5, 5.5, 5.5]),  # backticks for other characters
    ],
)
def test_formulas_compute_like_arithmetic(text: str, expected: list[float]) -> None:
    np.testing.assert_array_equal(parse(text).evaluate(COLUMNS), expected)


def test_inputs_are_the_columns_read_in_first_use_order() -> None:
    assert parse("b * (a + b) / X1st.Flr.SF").inputs == ("b", "a", "X1st.Flr.SF")


def test_division_by_zero_follows_ieee_and_is_left_to_the_layout() -> None:
    got = parse("a / b").evaluate(COLUMNS)
    assert got[0] == 0.5
    assert got[1] == np.inf  # 2 / 0
    assert np.isnan(got[2])  # 0 / 0
    assert got[3] == -0.75


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("a +", "ends where a column"),
        ("a b", "unexpected 'b' at character 3"),
        ("(a + b", "never closed"),
        ("a + b)", "unexpected ')'"),
        ("a ** 2", "unexpected '*' at character 4"),
        ("a ^ 2", "unexpected '^' at character 3"),
        ("log(a)", "unexpected '('"),
        ("__import__('os')", "unexpected"),
        ("a; b", "unexpected ';'"),
        ("a == b", "unexpected '='"),
        ("1 + 2", "reads no column"),
        ("1a", "unexpected 'a'"),
    ],
)
def test_anything_outside_the_grammar_is_refused_saying_where(text: str, says: str) -> None:
    with pytest.raises(FormulaError, match=re.escape(says)):
        parse(text)


def test_long_and_deep_formulas_are_refused() -> None:
    with pytest.raises(FormulaError, match="at most"):
        parse("a + " * (MAX_FORMULA_CHARS // 4) + "a")
    with pytest.raises(FormulaError, match="deeper"):
        parse("(" * (MAX_DEPTH + 2) + "a" + ")" * (MAX_DEPTH + 2))
    with pytest.raises(FormulaError, match="deeper"):
        parse("-" * (MAX_DEPTH + 2) + "a")
