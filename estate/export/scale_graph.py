"""The interval scale head: a few shallow trees in the graph give each row its error size.

Normalized conformal intervals (`estate.contract.bundle.AdaptiveInterval`) need, per
row, an estimate of how large the model's error is there. Training fits it as a small
XGBoost model (depth-2 trees) of |out-of-fold residual| on the graph's own encoded
features (`estate.training.adaptive`); this module writes it into the bundle's
graph as the ``scale`` output, beside ``prediction`` and ``raw``:

    scale = clip(trees(features), scale_min, scale_max)

The trees read the float32 feature matrix the estimator already reads, so the head is
one TreeEnsemble node plus a reshape and a clip (its cost per row and per 1,000 rows is
in bench/README.md). `ScaleHead.predict` is the numpy reference export parity compares
the graph against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from estate.contract.bundle import SCALE_OUTPUT

if TYPE_CHECKING:
    import onnx

_PREFIX = "ivscale_"


@dataclass(frozen=True)
class ScaleHead:
    """A fitted regressor of |residual| on the encoded features (one `convert_estimator`
    converts), clipped to [low, high] (both > 0)."""

    estimator: Any
    low: float
    high: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The scale of each row (float64), as the graph computes it up to float32 rounding."""
        got = np.asarray(self.estimator.predict(np.asarray(features, dtype=np.float32)))
        scale: np.ndarray = np.clip(got.astype(np.float64), self.low, self.high)
        return scale


def scale_nodes(
    head: ScaleHead, converted: onnx.ModelProto, features: str
) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers computing `SCALE_OUTPUT` (float32 [N]) from the float32
    feature matrix named `features`, given `converted`, the head's estimator converted on a
    float32 [N, F] input (`estate.export.onnx_graph.convert_estimator`). Every internal
    name starts with ``ivscale_``, so nothing collides with the model's own nodes."""
    from onnx import compose, helper, numpy_helper

    graph = compose.add_prefix_graph(converted.graph, _PREFIX)
    (source,) = graph.input
    trees = graph.output[0]
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
