"""`make bench-peers` without the peers: each protocol's body, its answers, the ratio logic.

The bodies must carry the same rows to every server: each is decoded here the way its
server builds a DataFrame (pandas from MLflow's records, one column per V2 input) and
compared with the frame the baseline builds from our ``instances``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.peers import protocols
from bench.peers.measure import agreement
from bench.peers.systems import System
from bench.peers.table import METRICS, best_peers
from bench.server import ServerError

FEATURES = ["area", "rooms", "zone", "year"]
ROWS = [
    {"area": 1800.0, "rooms": 3, "zone": "RL", "year": 1999},
    {"area": 950.5, "zone": "RM"},  # rooms and year missing, as the holdout rows omit them
    {"zone": "__missing__", "rooms": 2, "year": 2005, "area": 1200},
]
KINDS = protocols.column_kinds(ROWS, FEATURES)


def baseline_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """What the FastAPI baseline (and our KServe and BentoML peers) build."""
    return pd.DataFrame(rows, columns=FEATURES)


def test_column_kinds_text_is_bytes_numbers_and_missing_are_fp64() -> None:
    assert KINDS == {"area": "FP64", "rooms": "FP64", "zone": "BYTES", "year": "FP64"}
    assert list(KINDS) == FEATURES  # inputs follow the pipeline's feature order


@pytest.mark.parametrize("n", [1, 3])
def test_v2_body_decodes_to_the_baseline_frame(n: int) -> None:
    rows = ROWS[:n]
    body = protocols.body("v2", rows, KINDS)
    assert body["parameters"] == {"content_type": "pd"}
    for column in body["inputs"]:
        assert column["shape"] == [n]
        assert len(column["data"]) == n
        text = column["datatype"] == "BYTES"
        assert (column.get("parameters") == {"content_type": "str"}) is text
    decoded = pd.DataFrame(
        {
            c["name"]: pd.Series(c["data"], dtype=None if c["datatype"] == "BYTES" else "float64")
            for c in body["inputs"]
        }
    )
    want = baseline_frame(rows)
    assert list(decoded.columns) == FEATURES
    for name in FEATURES:
        left = pd.to_numeric(decoded[name], errors="coerce") if KINDS[name] == "FP64" else None
        if left is None:
            assert decoded[name].tolist() == want[name].tolist()
        else:
            right = pd.to_numeric(want[name], errors="coerce")
            assert np.array_equal(left.to_numpy(), right.to_numpy(), equal_nan=True)


def test_mlflow_records_name_every_feature_so_pandas_keeps_missing_columns() -> None:
    body = protocols.body("mlflow", ROWS[1:2], KINDS)
    (record,) = body["dataframe_records"]
    assert set(record) == set(FEATURES)
    assert record["rooms"] is None
    assert record["year"] is None
    frame = pd.DataFrame(body["dataframe_records"])  # what MLflow's scoring server does
    assert list(frame.columns) == FEATURES


@pytest.mark.parametrize("protocol", ["instances", "bentoml"])
def test_instances_bodies_are_our_rows_unchanged(protocol: str) -> None:
    raw = protocols.encode(protocol, ROWS, KINDS)
    assert json.loads(raw) == {"instances": ROWS}
    assert b" " not in raw.replace(b"__missing__", b"")  # compact separators


def test_unknown_protocol_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'grpc'"):
        protocols.body("grpc", ROWS, KINDS)


@pytest.mark.parametrize(
    ("protocol", "answer", "raw_log"),
    [
        ("instances", {"predictions": [{"price": 200000.0, "interval": None}]}, False),
        ("instances", {"predictions": [200000.0]}, False),
        ("bentoml", [200000.0], False),
        ("mlflow", {"predictions": [math.log(200000.0)]}, True),
        ("v2", {"outputs": [{"name": "predict", "data": [math.log(200000.0)]}]}, True),
    ],
)
def test_prices_read_each_servers_answer_in_dollars(
    protocol: str, answer: object, raw_log: bool
) -> None:
    (price,) = protocols.prices(protocol, json.dumps(answer).encode(), raw_log)
    assert price == pytest.approx(200000.0, rel=1e-12)


def _report(**systems: dict[str, object]) -> dict[str, object]:
    return {"systems": systems}


def test_best_peer_is_the_fastest_on_each_row_and_the_ratio_is_against_it() -> None:
    report = _report(
        predict={"c1": {"p50_ms": 2.0, "p99_ms": 50.0}, "batch": {"rows_per_s_at_p50": 5000.0}},
        hello={"c1": {"p50_ms": 0.1}},  # not a peer: never the best
        kserve={"c1": {"p50_ms": 14.0, "p99_ms": 20.0}, "batch": {"rows_per_s_at_p50": 12000.0}},
        mlflow={"c1": {"p50_ms": 40.0, "p99_ms": 60.0}, "batch": {"rows_per_s_at_p50": 15000.0}},
        mlserver={"error": "server exited"},  # failed peers have no figures
    )
    best = best_peers(report)
    assert best["1 row, concurrency 1, p50"] == {
        "peer": "kserve",
        "value": 14.0,
        "ours_better_by": 7.0,
    }
    assert best["1 row, concurrency 1, p99"]["ours_better_by"] == 0.4  # ours loses: below 1
    rate = best["1,000-row batch, rows/s at p50"]  # higher is better: the max peer
    assert (rate["peer"], rate["ours_better_by"]) == ("mlflow", pytest.approx(1 / 3, abs=0.01))
    assert best["cold start, process → first 200 (median)"]["peer"] is None
    assert set(best) == {label for label, *_ in METRICS}


def test_without_ours_there_is_a_best_peer_but_no_ratio() -> None:
    best = best_peers(_report(bentoml={"c8": {"p50_ms": 30.0}}))
    assert best["1 row, concurrency 8, p50"] == {
        "peer": "bentoml",
        "value": 30.0,
        "ours_better_by": None,
    }


def _mlflow() -> System:
    return System("mlflow", "MLflow", lambda port: ([], {}), protocol="mlflow", raw_log=True)


def test_agreement_is_the_largest_relative_price_difference() -> None:
    answer = json.dumps({"predictions": [math.log(100.0), math.log(202.0)]}).encode()
    assert agreement(_mlflow(), 200, answer, [100.0, 200.0]) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("status", "answer", "match"),
    [
        (500, b'{"error": "boom"}', "answered 500 to a valid request"),
        (200, b"<html>", "holds no prices"),
        (200, b'{"predictions": [1.0]}', "answered 1 prices for 2 rows"),
    ],
)
def test_agreement_refuses_answers_that_are_not_the_prices(
    status: int, answer: bytes, match: str
) -> None:
    with pytest.raises(ServerError, match=match):
        agreement(_mlflow(), status, answer, [100.0, 200.0])
