"""What the comparables test files share: a table's arrays as written."""

from __future__ import annotations

import io

import numpy as np


def arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a comparables.npz (no pickles: object arrays refuse to load)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
