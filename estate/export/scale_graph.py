"""The interval scale head: a few ONNX nodes that give each row its expected error size.

Normalized conformal intervals (`estate.contract.bundle.AdaptiveInterval`) need, per
row, an estimate of how large the model's error is there. Training fits it as a linear
model of log |out-of-fold residual| on the graph's own encoded features and its raw
prediction (`estate.training.adaptive`); this module writes that model into the bundle's
graph as the ``scale`` output, beside ``prediction`` and ``raw``:

    scale = clip(exp(features · w + raw · w_raw + b), scale_min, scale_max)

One Gemm over the float32 feature matrix the estimator already reads, a multiply-add
and an Exp: a few microseconds per call, whatever the batch size (bench/README.md).
`ScaleHead.predict` is the numpy reference export parity compares the graph against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from estate.contract.bundle import SCALE_OUTPUT


@dataclass(frozen=True)
class ScaleHead:
    """exp(features · weights + raw · raw_weight + bias), clipped to [low, high]."""

    weights: np.ndarray  # float64 [encoded columns]
    raw_weight: float
    bias: float
    low: float
    high: float

    def predict(self, features: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """The scale of each row (float64), as the graph computes it up to float32 rounding."""
        log_scale = np.asarray(features, dtype=np.float64) @ self.weights
        log_scale += np.asarray(raw, dtype=np.float64) * self.raw_weight + self.bias
        with np.errstate(over="ignore"):
            scale: np.ndarray = np.clip(np.exp(log_scale), self.low, self.high)
        return scale


def scale_nodes(head: ScaleHead, features: str, raw: str) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers computing `SCALE_OUTPUT` (float32 [N]) from the float32
    feature matrix `features` [N, F] and the raw output `raw` [N]."""
    from onnx import helper, numpy_helper

    f32 = np.float32
    inits = [
        numpy_helper.from_array(head.weights.astype(f32).reshape(-1, 1), "ivscale_w"),
        numpy_helper.from_array(np.array([head.bias], dtype=f32), "ivscale_b"),
        numpy_helper.from_array(np.array(head.raw_weight, dtype=f32), "ivscale_wraw"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "ivscale_flat"),
        numpy_helper.from_array(np.array(head.low, dtype=f32), "ivscale_low"),
        numpy_helper.from_array(np.array(head.high, dtype=f32), "ivscale_high"),
    ]
    nodes = [
        helper.make_node("Gemm", [features, "ivscale_w", "ivscale_b"], ["ivscale_lin2d"]),
        helper.make_node("Reshape", ["ivscale_lin2d", "ivscale_flat"], ["ivscale_lin"]),
        helper.make_node("Mul", [raw, "ivscale_wraw"], ["ivscale_rawterm"]),
        helper.make_node("Add", ["ivscale_lin", "ivscale_rawterm"], ["ivscale_log"]),
        helper.make_node("Exp", ["ivscale_log"], ["ivscale_exp"]),
        helper.make_node("Clip", ["ivscale_exp", "ivscale_low", "ivscale_high"], [SCALE_OUTPUT]),
    ]
    return nodes, inits
