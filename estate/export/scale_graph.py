"""The interval scale head: a few shallow trees in the graph give each row its error size.

Normalized conformal intervals (`estate.contract.bundle.AdaptiveInterval`) need, per
row, an estimate of how large the model's error is there. Training fits it as a small
gradient-boosted model (depth-2 trees) of |out-of-fold residual| on the graph's own
encoded features (`estate.training.adaptive`); this module writes it into the bundle's
graph as the ``scale`` output, beside ``prediction`` and ``raw``:

    scale = clip(trees(features), scale_min, scale_max)

The trees read the float32 feature matrix the estimator already reads, so the head is
one TreeEnsemble node plus a reshape and a clip (its cost per row and per 1,000 rows is
in bench/README.md). `ScaleHead.predict` is the numpy reference export parity compares
the graph against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from estate.contract.bundle import SCALE_OUTPUT
from estate.contract.errors import ExportError

_PREFIX = "ivscale_"


@dataclass(frozen=True)
class ScaleHead:
    """A fitted scikit-learn regressor of |residual| on the encoded features, clipped to
    [low, high] (both > 0)."""

    estimator: Any
    low: float
    high: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The scale of each row (float64), as the graph computes it up to float32 rounding."""
        got = np.asarray(self.estimator.predict(np.asarray(features, dtype=np.float32)))
        scale: np.ndarray = np.clip(got.astype(np.float64), self.low, self.high)
        return scale


def scale_nodes(
    head: ScaleHead, features: str, n_features: int, opset: dict[str, int]
) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers computing `SCALE_OUTPUT` (float32 [N]) from the float32
    feature matrix named `features` ([N, n_features]). Every internal name starts with
    ``ivscale_``, so nothing collides with the estimator's converted nodes."""
    from onnx import compose, helper, numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    try:
        converted = convert_sklearn(
            head.estimator,
            initial_types=[("features", FloatTensorType([None, n_features]))],
            target_opset=opset,
        )
    except Exception as exc:  # skl2onnx raises many kinds; all mean "cannot export"
        raise ExportError(f"skl2onnx cannot convert the interval scale model: {exc}") from exc
    graph = compose.add_prefix_graph(converted.graph, _PREFIX)
    (source,) = graph.input
    (trees,) = graph.output
    f32 = np.float32
    inits = [
        *graph.initializer,
        numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{_PREFIX}flat"),
        numpy_helper.from_array(np.array(head.low, dtype=f32), f"{_PREFIX}low"),
        numpy_helper.from_array(np.array(head.high, dtype=f32), f"{_PREFIX}high"),
    ]
    nodes = [
        helper.make_node("Identity", [features], [source.name]),
        *graph.node,
        helper.make_node("Reshape", [trees.name, f"{_PREFIX}flat"], [f"{_PREFIX}flat_out"]),
        helper.make_node(
            "Clip", [f"{_PREFIX}flat_out", f"{_PREFIX}low", f"{_PREFIX}high"], [SCALE_OUTPUT]
        ),
    ]
    return nodes, inits
