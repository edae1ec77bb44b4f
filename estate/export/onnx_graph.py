"""Build the bundle's single ONNX graph: preprocessing → estimator → output head.

The preprocessing part is written by hand from the encoded layout
(`estate.runtime.layout.EncodedLayout`, which training fits) so that it
takes two packed inputs (see `estate.contract.bundle`) and costs a fixed handful of nodes
whatever the column count: impute (IsNaN/Where), log1p (Max/Add/Log/Where), one-hot
(StringConcat → one LabelEncoder → ScatterElements). The estimator is converted by
skl2onnx, with onnxmltools' converter registered for XGBoost so that XGBoost also works
inside pipelines and voting ensembles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from estate.contract.bundle import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    PREDICTION_OUTPUT,
    RAW_OUTPUT,
    SCALE_OUTPUT,
)
from estate.contract.errors import ExportError
from estate.export.scale_graph import ScaleHead, scale_nodes
from estate.runtime.layout import EncodedLayout

#: Opsets of every bundle graph. StringConcat needs ai.onnx 20.
OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 3}
FEATURES = "features"
_SEP = "\x1f"  # joins column index and category in the label encoder's keys


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def encoder_graph(layout: EncodedLayout) -> tuple[list[Any], list[Any], list[Any]]:
    """Nodes, initializers and graph inputs computing `FEATURES` (float32 [N, F])."""
    nodes: list[Any] = []
    inits: list[Any] = []
    inputs: list[Any] = []
    blocks: list[str] = []
    k = len(layout.numeric)
    m = len(layout.categorical)
    if k:
        inputs.append(helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.DOUBLE, [None, k]))
        impute = layout.impute.reshape(1, k)
        inits.append(_const("enc_impute", impute))
        nodes += [
            helper.make_node("IsNaN", [NUMERIC_INPUT], ["enc_isnan"]),
            helper.make_node("Where", ["enc_isnan", "enc_impute", NUMERIC_INPUT], ["enc_filled"]),
        ]
        numeric_out = "enc_filled"
        mask = layout.log1p.reshape(1, k)
        if mask.any():
            inits += [
                _const("enc_zero", np.array(0.0, dtype=np.float64)),
                _const("enc_one", np.array(1.0, dtype=np.float64)),
                _const("enc_logmask", mask),
            ]
            nodes += [
                helper.make_node("Max", ["enc_filled", "enc_zero"], ["enc_clipped"]),
                helper.make_node("Add", ["enc_clipped", "enc_one"], ["enc_plus1"]),
                helper.make_node("Log", ["enc_plus1"], ["enc_logged"]),
                helper.make_node("Where", ["enc_logmask", "enc_logged", "enc_filled"], ["enc_num"]),
            ]
            numeric_out = "enc_num"
        nodes.append(helper.make_node("Cast", [numeric_out], ["enc_num32"], to=TensorProto.FLOAT))
        blocks.append("enc_num32")
    if m:
        inputs.append(
            helper.make_tensor_value_info(CATEGORICAL_INPUT, TensorProto.STRING, [None, m])
        )
        index = layout.category_index
        width = len(index)
        prefix = np.array([[f"{j}{_SEP}" for j in range(m)]], dtype=object)
        inits += [
            _const("enc_prefix", prefix),
            _const("enc_width", np.array([width + 1], dtype=np.int64)),
            _const("enc_zero_i", np.array([0], dtype=np.int64)),
            _const("enc_one_i", np.array([1], dtype=np.int64)),
            _const("enc_end", np.array([width], dtype=np.int64)),
        ]
        nodes += [
            helper.make_node("StringConcat", ["enc_prefix", CATEGORICAL_INPUT], ["enc_keys"]),
            helper.make_node(
                "LabelEncoder",
                ["enc_keys"],
                ["enc_idx"],
                domain="ai.onnx.ml",
                keys_strings=[f"{j}{_SEP}{c}" for (j, c) in index],
                values_int64s=[col - k for col in index.values()],
                default_int64=width,  # unseen category → a spare column, sliced off below
            ),
            helper.make_node("Shape", [CATEGORICAL_INPUT], ["enc_rows"], end=1),
            helper.make_node("Concat", ["enc_rows", "enc_width"], ["enc_oh_shape"], axis=0),
            helper.make_node(
                "ConstantOfShape",
                ["enc_oh_shape"],
                ["enc_oh_zeros"],
                value=numpy_helper.from_array(np.array([0.0], dtype=np.float32)),
            ),
            helper.make_node("Shape", ["enc_idx"], ["enc_idx_shape"]),
            helper.make_node(
                "ConstantOfShape",
                ["enc_idx_shape"],
                ["enc_ones"],
                value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
            ),
            helper.make_node(
                "ScatterElements", ["enc_oh_zeros", "enc_idx", "enc_ones"], ["enc_oh_full"], axis=1
            ),
            helper.make_node(
                "Slice", ["enc_oh_full", "enc_zero_i", "enc_end", "enc_one_i"], ["enc_onehot"]
            ),
        ]
        blocks.append("enc_onehot")
    if len(blocks) == 1:
        nodes.append(helper.make_node("Identity", blocks, [FEATURES]))
    else:
        nodes.append(helper.make_node("Concat", blocks, [FEATURES], axis=1))
    return nodes, inits, inputs


def _register_xgboost() -> None:
    """Teach skl2onnx to convert XGBoost estimators anywhere in a pipeline."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    update_registered_converter(
        XGBRegressor,
        "XGBoostXGBRegressor",
        calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )
    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def convert_estimator(estimator: Any, n_features: int, classifier: bool) -> onnx.ModelProto:
    """skl2onnx conversion of the fitted estimator on a float32 [N, n_features] input."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _register_xgboost()
    options = {"zipmap": False} if classifier else None
    try:
        converted: onnx.ModelProto = convert_sklearn(
            estimator,
            initial_types=[(FEATURES, FloatTensorType([None, n_features]))],
            target_opset=OPSET,
            options={id(estimator): options} if options else None,
        )
    except Exception as exc:  # skl2onnx raises many kinds; all mean "cannot export"
        raise ExportError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {exc}. "
            "Choose a supported estimator in the config's candidates."
        ) from exc
    return converted


def build_graph(
    layout: EncodedLayout,
    estimator: Any,
    *,
    classifier: bool,
    log_target: bool,
    doc: str,
    scale: ScaleHead | None = None,
) -> onnx.ModelProto:
    """One graph from raw packed inputs to `prediction` and `raw` outputs (and `scale`,
    the adaptive interval's per-row scale, when `scale` is given)."""
    n_features = layout.width
    est = convert_estimator(estimator, n_features, classifier)
    est_opsets = {o.domain: o.version for o in est.opset_import}
    for domain, version in est_opsets.items():
        if domain in OPSET and version > OPSET[domain]:
            raise ExportError(f"skl2onnx produced opset {domain or 'ai.onnx'}={version} > {OPSET}")
    enc_nodes, enc_inits, enc_inputs = encoder_graph(layout)

    head: list[Any] = []
    head_inits: list[Any] = []
    outputs = [o.name for o in est.graph.output]
    if classifier:
        probs = next(n for n in outputs if "prob" in n)
        head_inits.append(_const("head_pos", np.array(1, dtype=np.int64)))
        head += [
            helper.make_node("Gather", [probs, "head_pos"], [RAW_OUTPUT], axis=1),
            helper.make_node("Identity", [RAW_OUTPUT], [PREDICTION_OUTPUT]),
        ]
    else:
        head_inits.append(_const("head_flat", np.array([-1], dtype=np.int64)))
        head.append(helper.make_node("Reshape", [outputs[0], "head_flat"], [RAW_OUTPUT]))
        op = "Exp" if log_target else "Identity"
        head.append(helper.make_node(op, [RAW_OUTPUT], [PREDICTION_OUTPUT]))
    graph_outputs = [
        helper.make_tensor_value_info(PREDICTION_OUTPUT, TensorProto.FLOAT, [None]),
        helper.make_tensor_value_info(RAW_OUTPUT, TensorProto.FLOAT, [None]),
    ]
    if scale is not None:
        scale_trees = convert_estimator(scale.estimator, n_features, classifier=False)
        scale_head, scale_inits = scale_nodes(scale, scale_trees, FEATURES)
        head += scale_head
        head_inits += scale_inits
        graph_outputs.append(helper.make_tensor_value_info(SCALE_OUTPUT, TensorProto.FLOAT, [None]))

    graph = helper.make_graph(
        enc_nodes + list(est.graph.node) + head,
        "estate_advisor",
        enc_inputs,
        graph_outputs,
        enc_inits + list(est.graph.initializer) + head_inits,
    )
    opsets = {**est_opsets, **OPSET}
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="estate-advisor",
        doc_string=doc,
    )
    model.ir_version = min(model.ir_version, 10)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"The assembled ONNX graph is invalid: {exc}") from exc
    return model
