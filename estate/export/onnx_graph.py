"""Build the bundle's single ONNX graph: preprocessing → estimator → output head.

The preprocessing part is written by hand from the encoded layout
(`estate.runtime.layout.EncodedLayout`, which training fits) so that it
takes two packed inputs (see `estate.contract.bundle`) and costs a fixed handful of nodes
whatever the column count: impute (IsNaN/Where), one LabelEncoder hashing every
categorical cell once (StringConcat'ed keys → a one-hot column or an ordinal level),
derived features (their formula's Add/Sub/Mul/Div nodes, then IsNaN/IsInf/Where),
log1p (Max/Add/Log/Where), one-hot (ScatterElements).
The estimator is converted by skl2onnx, with onnxmltools' converter registered for
XGBoost so that XGBoost also works inside pipelines and voting ensembles.
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
from estate.runtime.formula import fold
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
    if m:
        inputs.append(
            helper.make_tensor_value_info(CATEGORICAL_INPUT, TensorProto.STRING, [None, m])
        )
        prefix = np.array([[f"{j}{_SEP}" for j in range(m)]], dtype=object)
        inits.append(_const("enc_prefix", prefix))
        nodes.append(
            helper.make_node("StringConcat", ["enc_prefix", CATEGORICAL_INPUT], ["enc_keys"])
        )
        nodes.append(_codes_node(layout))
    if layout.number_width:
        blocks.append(_number_nodes(layout, nodes, inits))
    if layout.category_index:
        blocks.append(_onehot_nodes(layout, nodes, inits))
    if len(blocks) == 1:
        nodes.append(helper.make_node("Identity", blocks, [FEATURES]))
    else:
        nodes.append(helper.make_node("Concat", blocks, [FEATURES], axis=1))
    return nodes, inits, inputs


def _number_nodes(layout: EncodedLayout, nodes: list[Any], inits: list[Any]) -> str:
    """The number block (numeric, ordinal, derived; log1p; float32): its tensor's name."""
    k = len(layout.numeric)
    parts: list[str] = []
    if k:
        inits.append(_const("enc_impute", layout.impute.reshape(1, k)))
        nodes += [
            helper.make_node("IsNaN", [NUMERIC_INPUT], ["enc_isnan"]),
            helper.make_node("Where", ["enc_isnan", "enc_impute", NUMERIC_INPUT], ["enc_filled"]),
        ]
        parts.append("enc_filled")
    if layout.ordinal:
        parts.append(_ordinal_nodes(layout, nodes, inits))
    block = _concat(parts, "enc_base", nodes)
    if layout.derived:
        columns = _formula_inputs(layout, block, nodes, inits)
        derived = [
            _formula_nodes(layout, i, columns, nodes, inits) for i in range(len(layout.derived))
        ]
        inits.append(_const("enc_dimpute", layout.derived_impute.reshape(1, len(layout.derived))))
        raw = _concat(derived, "enc_draw", nodes)
        nodes += [  # not finite (x/0, 0/0, overflow) → the derived feature's median
            helper.make_node("IsNaN", [raw], ["enc_dnan"]),
            helper.make_node("IsInf", [raw], ["enc_dinf"]),
            helper.make_node("Or", ["enc_dnan", "enc_dinf"], ["enc_dbad"]),
            helper.make_node("Where", ["enc_dbad", "enc_dimpute", raw], ["enc_derived"]),
        ]
        block = _concat([block, "enc_derived"], "enc_numbers", nodes)
    out = block
    mask = layout.log1p.reshape(1, layout.number_width)
    if mask.any():
        inits += [
            _const("enc_zero", np.array(0.0, dtype=np.float64)),
            _const("enc_one", np.array(1.0, dtype=np.float64)),
            _const("enc_logmask", mask),
        ]
        nodes += [
            helper.make_node("Max", [block, "enc_zero"], ["enc_clipped"]),
            helper.make_node("Add", ["enc_clipped", "enc_one"], ["enc_plus1"]),
            helper.make_node("Log", ["enc_plus1"], ["enc_logged"]),
            helper.make_node("Where", ["enc_logmask", "enc_logged", block], ["enc_num"]),
        ]
        out = "enc_num"
    nodes.append(helper.make_node("Cast", [out], ["enc_num32"], to=TensorProto.FLOAT))
    return "enc_num32"


def _concat(parts: list[str], name: str, nodes: list[Any]) -> str:
    if len(parts) == 1:
        return parts[0]
    nodes.append(helper.make_node("Concat", parts, [name], axis=1))
    return name


def _codes_node(layout: EncodedLayout) -> Any:
    """One LabelEncoder over every categorical cell (strings are hashed once): a one-hot
    feature's category → its column in the one-hot block, an ordinal feature's text → its
    level, anything else → -1 (float32 holds both exactly)."""
    keys: list[str] = []
    values: list[float] = []
    start = layout.width - len(layout.category_index)
    for (j, c), col in layout.category_index.items():
        keys.append(f"{j}{_SEP}{c}")
        values.append(float(col - start))
    for j, mapping in zip(layout.ordinal, layout.ordinal_map, strict=True):
        for text, level in mapping.items():
            keys.append(f"{j}{_SEP}{text}")
            values.append(float(level))
    return helper.make_node(
        "LabelEncoder",
        ["enc_keys"],
        ["enc_codes"],
        domain="ai.onnx.ml",
        keys_strings=keys,
        values_floats=values,
        default_float=-1.0,
    )


def _codes_of(columns: list[int], m: int, name: str, nodes: list[Any], inits: list[Any]) -> str:
    """The codes of some categorical columns (all of them: no Gather)."""
    if columns == list(range(m)):
        return "enc_codes"
    inits.append(_const(f"{name}_cols", np.array(columns, dtype=np.int64)))
    nodes.append(helper.make_node("Gather", ["enc_codes", f"{name}_cols"], [name], axis=1))
    return name


def _ordinal_nodes(layout: EncodedLayout, nodes: list[Any], inits: list[Any]) -> str:
    """Ordinal features' levels (float64 [N, o]) from the shared codes; a text the scale
    does not hold (-1) → the training mode's level."""
    o = len(layout.ordinal)
    codes = _codes_of(layout.ordinal, len(layout.categorical), "enc_ord_codes", nodes, inits)
    inits += [
        _const("enc_ord_default", layout.ordinal_default.reshape(1, o)),
        _const("enc_ord_zero", np.array(0.0, dtype=np.float32)),
    ]
    nodes += [
        helper.make_node("Less", [codes, "enc_ord_zero"], ["enc_ord_unknown"]),
        helper.make_node("Cast", [codes], ["enc_ord_level"], to=TensorProto.DOUBLE),
        helper.make_node(
            "Where", ["enc_ord_unknown", "enc_ord_default", "enc_ord_level"], ["enc_ordinal"]
        ),
    ]
    return "enc_ordinal"


def _formula_inputs(
    layout: EncodedLayout, block: str, nodes: list[Any], inits: list[Any]
) -> dict[int, str]:
    """Every number-block column a formula reads, as its own float64 [N, 1] tensor: one
    Gather and one Split for all of them (a Gather per reference was 24 of the Ames
    graph's 82 nodes, and onnxruntime pays per node on every request)."""
    wanted = sorted({c for columns in layout.formula_columns for c in columns})
    if not wanted:  # formulas of constants only
        return {}
    inits.append(_const("enc_fcols", np.array(wanted, dtype=np.int64)))
    nodes.append(helper.make_node("Gather", [block, "enc_fcols"], ["enc_fin"], axis=1))
    names = [f"enc_fin_{c}" for c in wanted]
    if len(names) == 1:
        return {wanted[0]: "enc_fin"}
    nodes.append(helper.make_node("Split", ["enc_fin"], names, axis=1, num_outputs=len(names)))
    return dict(zip(wanted, names, strict=True))


def _formula_nodes(
    layout: EncodedLayout, i: int, columns: dict[int, str], nodes: list[Any], inits: list[Any]
) -> str:
    """Derived feature `i` as Add/Sub/Mul/Div/Neg nodes on float64 [N, 1] columns
    (`columns`: a number-block column → its tensor, `_formula_inputs`)."""
    formula = layout.formulas[i]
    column = dict(zip(formula.inputs, layout.formula_columns[i], strict=True))
    count = iter(range(10**6))
    ops = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div"}

    def fresh() -> str:
        return f"enc_d{i}_{next(count)}"

    def num(value: float) -> str:
        name = fresh()
        inits.append(_const(name, np.array([[value]], dtype=np.float64)))
        return name

    def col(name: str) -> str:
        return columns[column[name]]

    def neg(x: str) -> str:
        out = fresh()
        nodes.append(helper.make_node("Neg", [x], [out]))
        return out

    def binary(op: str, a: str, b: str) -> str:
        out = fresh()
        nodes.append(helper.make_node(ops[op], [a, b], [out]))
        return out

    return fold(formula.tree, num, col, neg, binary)


def _onehot_nodes(layout: EncodedLayout, nodes: list[Any], inits: list[Any]) -> str:
    """One-hot columns of the non-ordinal categorical features (float32 [N, width]) from
    the shared codes: an unseen category (-1) sets a spare column, sliced off below."""
    width = len(layout.category_index)
    onehot = [j for j, c in enumerate(layout.categorical) if c.ordinal is None]
    codes = _codes_of(onehot, len(layout.categorical), "enc_oh_codes", nodes, inits)
    inits += [
        _const("enc_width", np.array([width + 1], dtype=np.int64)),
        _const("enc_spare", np.array(float(width), dtype=np.float32)),
        _const("enc_zero_f", np.array(0.0, dtype=np.float32)),
        _const("enc_zero_i", np.array([0], dtype=np.int64)),
        _const("enc_one_i", np.array([1], dtype=np.int64)),
        _const("enc_end", np.array([width], dtype=np.int64)),
    ]
    nodes += [
        helper.make_node("Less", [codes, "enc_zero_f"], ["enc_unseen"]),
        helper.make_node("Where", ["enc_unseen", "enc_spare", codes], ["enc_idx_f"]),
        helper.make_node("Cast", ["enc_idx_f"], ["enc_idx"], to=TensorProto.INT64),
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
    return "enc_onehot"


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
