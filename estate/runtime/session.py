"""Opening and running a bundle's ONNX graph: one rule for serving, batch, export and gates.

Every caller runs the graph the way a serving instance does: the CPU provider, a fixed
number of intra-op threads, sequential execution and no spinning threads (a function
instance shares its CPU; a spinning pool burns it between requests). So export parity
and the promotion gates measure the very computation that answers requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from estate.contract.bundle import CATEGORICAL_INPUT, NUMERIC_INPUT, PREDICTION_OUTPUT, RAW_OUTPUT

#: Both outputs, in the order `Session.run` returns them by default.
OUTPUTS = (PREDICTION_OUTPUT, RAW_OUTPUT)
_FLOAT64, _OBJECT = np.dtype(np.float64), np.dtype(object)


@dataclass(frozen=True)
class Session:
    """An onnxruntime session of one bundle graph and the packed inputs it takes."""

    session: ort.InferenceSession
    inputs: frozenset[str]
    outputs: frozenset[str] = frozenset(OUTPUTS)

    def run(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        outputs: Sequence[str] = OUTPUTS,
    ) -> list[np.ndarray]:
        """One onnxruntime call for the whole batch: the named outputs as float64 arrays.

        A graph without numeric (or categorical) features has no such input; it is not fed.
        Arrays already of the right dtype are passed without a copy.
        """
        feeds: dict[str, np.ndarray] = {}
        if NUMERIC_INPUT in self.inputs:
            feeds[NUMERIC_INPUT] = (
                numeric if numeric.dtype == _FLOAT64 else numeric.astype(_FLOAT64)
            )
        if CATEGORICAL_INPUT in self.inputs:
            feeds[CATEGORICAL_INPUT] = (
                categorical if categorical.dtype == _OBJECT else categorical.astype(object)
            )
        return [r.astype(_FLOAT64) for r in self.session.run(outputs, feeds)]


def open_session(model_bytes: bytes, threads: int = 1) -> Session:
    """A session on a serialized graph, with serving's options and `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    # No graph rewrites: the extended fusions find nothing to fuse in these graphs (tree
    # ensembles, one-hot, a few arithmetic nodes) and cost ~20 ms of every cold start; the
    # basic ones (constant folding, dead nodes) another ~3 ms for no faster run. Same
    # output bits either way (checked on 1,000 Ames rows, bench/README.md "Cold start").
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return Session(
        session,
        frozenset(i.name for i in session.get_inputs()),
        frozenset(o.name for o in session.get_outputs()),
    )


def run_graph(
    model_bytes: bytes,
    numeric: np.ndarray,
    categorical: np.ndarray,
    output: str = PREDICTION_OUTPUT,
) -> np.ndarray:
    """One output of a serialized graph on packed rows, in a session of its own (export
    parity, SHAP additivity and the promotion gates run each graph once)."""
    (result,) = open_session(model_bytes).run(numeric, categorical, [output])
    return result
