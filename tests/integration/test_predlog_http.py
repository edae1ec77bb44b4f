"""System tier for prediction logs: the production server (gunicorn, several request
threads) answers batches of both forms and single rows at once; every line it writes to
stdout is whole, and `estate monitor` reads back exactly the rows it answered."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.server import request, run_function
from estate.cli.main import main
from estate.contract.bundle import Manifest
from estate.contract.predlog import PredictionBatchLine, PredictionLogLine, parse_log_line

REPO = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}


def ames_rows(n: int, manifest: Manifest) -> list[dict[str, Any]]:
    """`n` Ames sales as callers send them: the model's fields, a missing value left out."""
    import pandas as pd

    names = [f.name for f in manifest.input.numeric] + [c.name for c in manifest.input.categorical]
    table = pd.read_csv(REPO / "data" / "ames.csv.gz").head(n)[names]
    return [
        {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
        for r in table.to_dict(orient="records")
    ]


def test_lines_of_concurrent_batches_and_rows_stay_whole_and_monitor_reads_them_all(
    ames_store: Path, ames_manifest: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ames_rows(600, ames_manifest)
    with run_function("predict", ames_store, ready_body={"instances": rows[:1]}) as server:
        names = list(dict.fromkeys(k for r in rows for k in r))
        bodies: list[dict[str, Any]] = []
        for i in range(0, 600, 150):  # 4 batches, in both forms, and 20 single rows
            chunk = rows[i : i + 150]
            columns = {n: [r.get(n) for r in chunk] for n in names}
            bodies.append({"instances": chunk} if i % 300 else {"inputs": columns})
        bodies += [{"instances": [r]} for r in rows[:20]]

        def post(body: dict[str, Any]) -> int:
            payload = json.dumps(body).encode()
            status, _, answer = request(server.port, "POST", payload, JSON)
            assert status == 200, answer[:300]
            return len(json.loads(answer)["predictions"])

        with ThreadPoolExecutor(8) as pool:
            answered = sum(pool.map(post, bodies))
        server.log.flush()
        server.log.seek(0)
        out = server.log.read()
    lines = [x for x in out.splitlines() if b'"event":"prediction"' in x]
    parsed = [parse_log_line(x) for x in lines]
    assert None not in parsed  # every line whole: none interleaved with another
    batch = [p for p in parsed if isinstance(p, PredictionBatchLine)]
    single = [p for p in parsed if isinstance(p, PredictionLogLine)]
    assert len(single) == 1 + 20  # the ready request and the single rows
    assert sum(p.count for p in batch) == 600
    assert len({p.request_id for p in batch}) == 4
    assert all(len(x) <= 200_000 for x in lines)
    logs = tmp_path / "stdout.log"
    logs.write_bytes(out)
    report = tmp_path / "report.json"
    args = ["monitor", "--logs", str(logs), "--artifacts", str(ames_store)]
    code = main([*args, "--json", str(report)])
    printed = capsys.readouterr().out
    assert code in (0, 1), printed  # drift or not: every row was read
    assert json.loads(report.read_text())["rows"] == answered + 1 == 600 + 21
