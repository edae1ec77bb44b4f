"""What a candidate costs to serve: ONNX time per 1,000 rows on one thread, trees, paths.

Training reports it next to each candidate's CV (issue 14: a cheaper model at equal CV
speeds up the batch path and explain alike). The time is measured on the candidate's own
exported graph (the bundle's preprocessing included) with serving's session options and
one intra-op thread: the median of a few runs over 1,000 packed training rows. It is a
report, not a gate: a shared machine makes it noisy, so compare candidates of one run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
from onnx import helper

from estate.contract.bundle import PredictCost
from estate.export.onnx_graph import build_graph
from estate.runtime.layout import EncodedLayout
from estate.runtime.session import open_session

#: Rows per timed call, and timed calls (after one warm-up) whose median is reported.
COST_ROWS = 1000
COST_REPEATS = 5


def tree_counts(graph: onnx.ModelProto) -> tuple[int, int]:
    """(trees, leaves) of the graph's tree-ensemble nodes; leaves = TreeSHAP paths."""
    trees = leaves = 0
    for node in graph.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        trees += len(set(attrs.get("nodes_treeids", [])))
        leaves += sum(1 for mode in attrs.get("nodes_modes", []) if mode == b"LEAF")
    return trees, leaves


def measure_cost(
    layout: EncodedLayout,
    estimator: Any,
    rows: tuple[np.ndarray, np.ndarray],
    *,
    classifier: bool,
    log_target: bool,
) -> PredictCost:
    """Build the candidate's graph and time it on `rows` tiled to `COST_ROWS` rows."""
    graph = build_graph(layout, estimator, classifier=classifier, log_target=log_target, doc="")
    model_bytes = graph.SerializeToString()
    numeric, categorical = rows
    take = np.arange(COST_ROWS) % max(numeric.shape[0], 1)
    numeric, categorical = numeric[take], categorical[take]
    session = open_session(model_bytes, threads=1)
    session.run(numeric, categorical)
    times = []
    for _ in range(COST_REPEATS):
        t0 = time.perf_counter()
        session.run(numeric, categorical)
        times.append(time.perf_counter() - t0)
    trees, leaves = tree_counts(graph)
    return PredictCost(
        onnx_ms_per_1000_rows=round(float(np.median(times)) * 1e3 * 1000 / COST_ROWS, 3),
        trees=trees,
        shap_paths=leaves,
        model_bytes=len(model_bytes),
    )


def added(costs: list[PredictCost]) -> PredictCost:
    """A blend's cost: its members' added (its one graph runs every member)."""
    return PredictCost(
        onnx_ms_per_1000_rows=round(sum(c.onnx_ms_per_1000_rows for c in costs), 3),
        trees=sum(c.trees for c in costs),
        shap_paths=sum(c.shap_paths for c in costs),
        model_bytes=sum(c.model_bytes for c in costs),
    )
