"""The notes about a packed batch's input: what was imputed, out of range or unknown.

Kept apart from `estate.runtime.serving_model` (which holds one `InputWarnings` and
delegates to it) because the notes are their own concern: texts built from the schema
once, then read per row of a small batch (`row_warnings`) or once per big batch
(`warning_summary`) on every request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from estate.contract.bundle import MISSING_CATEGORY, InputSchema
from estate.runtime.packing import Packed


class InputWarnings:
    """The warnings of one input schema's packed rows; the notes' texts are built once."""

    def __init__(self, schema: InputSchema) -> None:
        self.numeric = schema.numeric
        self.categorical = schema.categorical
        self._imputed = [
            _note(f.name, "imputed", f"missing; used the training median {f.impute:g}")
            for f in self.numeric
        ] + [
            _note(c.name, "imputed", f"missing; used the most common value {c.impute!r}")
            for c in self.categorical
        ]
        na_used = f"missing; used {MISSING_CATEGORY!r}, how training saw missing values"
        self._imputed_na = [_note(c.name, "imputed", na_used) for c in self.categorical]
        self._imputed_by = [  # value used → its note
            {MISSING_CATEGORY: na, c.impute: mode}
            for c, na, mode in zip(
                self.categorical, self._imputed_na, self._imputed[len(self.numeric) :], strict=True
            )
        ]

    def row_warnings(self, packed: Packed, i: int) -> list[dict[str, str]]:
        """The notes of row `i` (the same as `ServingModel.pack` gives it)."""
        notes = [
            self._numeric_note(packed, i, j)
            for j in np.flatnonzero(packed.missing_numeric[i] | packed.outside[i]).tolist()
        ]
        return notes + self._category_notes(packed, i)

    def warning_summary(self, packed: Packed, rows_listed: int) -> list[dict[str, Any]]:
        """One entry per (feature, code) that any row triggered: how many rows, the
        first `rows_listed` row indices, and one message for all of them.

        Each mask is counted per feature in one numpy pass; only the features with a
        flagged cell are looked at again (a batch has a few, a schema has dozens).
        """
        summary: list[dict[str, Any]] = []
        numeric = (packed.missing_numeric, packed.outside)
        categorical = (packed.missing_category, packed.unknown)
        counts = [mask.sum(axis=0).tolist() for mask in (*numeric, *categorical)]

        def add(name: str, code: str, message: str, mask: np.ndarray, count: int) -> None:
            summary.append(
                {
                    "field": name,
                    "code": code,
                    "message": message,
                    "count": count,
                    "rows": np.flatnonzero(mask)[:rows_listed].tolist(),
                }
            )

        for j, f in enumerate(self.numeric):
            if counts[0][j]:
                add(f.name, "imputed", self._imputed[j]["message"], numeric[0][:, j], counts[0][j])
            if counts[1][j]:
                add(
                    f.name,
                    "out_of_range",
                    f"outside the training range {f.min:g}…{f.max:g}; those estimates are "
                    "extrapolations",
                    numeric[1][:, j],
                    counts[1][j],
                )
        k = len(self.numeric)
        for j, c in enumerate(self.categorical):
            if counts[2][j]:
                missing = categorical[0][:, j]
                used = set(packed.categorical[missing, j].tolist())
                message = self._imputed[k + j]["message"]
                if c.impute not in used:
                    message = self._imputed_na[j]["message"]
                elif len(used) > 1:
                    message = (
                        f"missing; used {MISSING_CATEGORY!r} for a null or blank value (how "
                        f"training saw missing values) and the most common value {c.impute!r} "
                        "where it was not sent"
                    )
                add(c.name, "imputed", message, missing, counts[2][j])
            if counts[3][j]:
                add(
                    c.name,
                    "unknown_category",
                    "a value not seen in training; it counts as none of the known values "
                    f"({_preview(c.categories)})",
                    categorical[1][:, j],
                    counts[3][j],
                )
        return summary

    def _numeric_note(self, packed: Packed, i: int, j: int) -> dict[str, str]:
        if packed.missing_numeric[i, j]:
            return dict(self._imputed[j])
        feat, value = self.numeric[j], float(packed.numeric[i, j])
        return _note(
            feat.name,
            "out_of_range",
            f"{value:g} is outside the training range {feat.min:g}…{feat.max:g}; "
            "the estimate is an extrapolation",
        )

    def _category_notes(self, packed: Packed, i: int) -> list[dict[str, str]]:
        """Imputation and unknown-category notes of row `i`'s categorical values."""
        notes = []
        used, missing = packed.categorical[i].tolist(), packed.missing_category[i].tolist()
        for j in np.flatnonzero(packed.missing_category[i] | packed.unknown[i]).tolist():
            if missing[j]:  # filled with the mode or "NA": the note names which
                notes.append(dict(self._imputed_by[j][used[j]]))
                continue
            cat, text = self.categorical[j], packed.categorical[i, j]
            notes.append(
                _note(
                    cat.name,
                    "unknown_category",
                    f"{text!r} was not seen in training; it counts as none of the "
                    f"known values ({_preview(cat.categories)})",
                )
            )
        return notes


def _preview(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(values[:limit])
    return shown + (", …" if len(values) > limit else "")


def _note(field_name: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_name, "code": code, "message": message}
