"""Each server's own request format for the same rows, and the prices in its answer.

The rows are the bench's Ames holdout instances (`bench.models`): one dict per house,
missing numbers left out, categories as text. Every server gets them in the form its
documentation shows:

- ours, KServe (v1 protocol) and BentoML (the service's ``instances`` parameter):
  ``{"instances": [row, ...]}``;
- MLflow's scoring server: ``{"dataframe_records": [row, ...]}`` with every feature
  named in each record (``None`` where missing), since pandas builds the frame from
  the records' keys;
- MLServer (Open Inference / V2 protocol, pandas content type): one input per column,
  ``FP64`` for numbers (``null`` where missing) and ``BYTES`` for text;
- ours, columnar (``columns``, for batches): ``{"inputs": {feature: [v0, v1, ...]}}``,
  every feature any row has, ``null`` where a row lacks it (the bench rows always carry
  their categories, so a null is only ever a missing number: the same predictions as
  the row objects).

MLflow's and MLServer's stock scikit-learn runtimes return the pipeline's raw output
(log price for the Ames model): `prices` undoes the log so every answer is in dollars.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]

PROTOCOLS = ("instances", "bentoml", "mlflow", "v2", "columns")


def column_kinds(rows: Sequence[Row], features: Sequence[str]) -> dict[str, str]:
    """V2 datatype of each feature: ``BYTES`` if any row holds text for it, else ``FP64``."""
    return {
        name: "BYTES" if any(isinstance(r.get(name), str) for r in rows) else "FP64"
        for name in features
    }


def v2_body(rows: Sequence[Row], kinds: dict[str, str]) -> dict[str, Any]:
    """An Open Inference (V2) request decoding to a pandas DataFrame, one input a column."""
    inputs: list[dict[str, Any]] = []
    for name, kind in kinds.items():
        column: dict[str, Any] = {
            "name": name,
            "shape": [len(rows)],
            "datatype": kind,
            "data": [r.get(name) for r in rows],
        }
        if kind == "BYTES":
            column["parameters"] = {"content_type": "str"}
        inputs.append(column)
    return {"inputs": inputs, "parameters": {"content_type": "pd"}}


def body(protocol: str, rows: Sequence[Row], kinds: dict[str, str]) -> dict[str, Any]:
    """The request body carrying `rows` in `protocol` (one of `PROTOCOLS`)."""
    if protocol in ("instances", "bentoml"):
        return {"instances": list(rows)}
    if protocol == "mlflow":
        return {"dataframe_records": [{name: r.get(name) for name in kinds} for r in rows]}
    if protocol == "v2":
        return v2_body(rows, kinds)
    if protocol == "columns":
        names = [n for n in kinds if any(n in r for r in rows)]
        return {"inputs": {name: [r.get(name) for r in rows] for name in names}}
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def encode(protocol: str, rows: Sequence[Row], kinds: dict[str, str]) -> bytes:
    """`body` as the bytes sent (compact JSON, as a client library would send it)."""
    return json.dumps(body(protocol, rows, kinds), separators=(",", ":")).encode()


def prices(protocol: str, answer: bytes, raw_log: bool) -> list[float]:
    """Dollar prices from a 200 answer; `raw_log`: the server returns log price."""
    decoded: Any = json.loads(answer)
    if protocol == "v2":
        values = decoded["outputs"][0]["data"]
    elif protocol == "bentoml":
        values = decoded
    else:
        values = decoded["predictions"]
    out: list[float] = []
    for value in values:
        number = float(value["price"] if isinstance(value, dict) else value)
        out.append(math.exp(number) if raw_log else number)
    return out
