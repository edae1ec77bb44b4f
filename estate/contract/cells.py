"""The wording of bad-cell errors, shared by training (pandas) and scoring (pyarrow).

Both readers name the file, the column and the data row (counted from 1, the header not
counted) the same way, and say what to do. No heavy imports: `estate score` uses it.
"""

from __future__ import annotations

#: Largest magnitude the ONNX graph's float32 features can hold (numpy's finfo value).
FLOAT32_MAX = 3.4028234663852886e38


def where(uri: str, row: int, column: str) -> str:
    return f"{uri}: data row {row}, column {column!r}"


def not_a_number(uri: str, row: int, column: str, value: str, fix: str) -> str:
    return f"{where(uri, row, column)}: {value} is not a number{fix}"


def out_of_range(uri: str, row: int, column: str, value: float) -> str:
    return (
        f"{where(uri, row, column)}: {value:g} is not a finite number within "
        f"±{FLOAT32_MAX:.3g} (the model computes in float32); fix the cell, or leave it "
        "empty to impute it."
    )


def not_utf8(uri: str, row: int, column: str) -> str:
    return f"{where(uri, row, column)}: the bytes are not valid UTF-8; save the file as UTF-8."


def ragged(uri: str, row: int, cells: int, expected: int) -> str:
    return (
        f"{uri}: data row {row} has {cells} cells, the header {expected}; quote cells that "
        'hold the delimiter (",") or fix the row.'
    )


def one_line(exc: BaseException, limit: int | None = 300) -> str:
    """`exc`'s message on one line (a wrapped library error can span several), cut at
    `limit` characters when it quotes a whole cell or response."""
    text = " ".join(str(exc).split())
    return text if limit is None else text[:limit]
