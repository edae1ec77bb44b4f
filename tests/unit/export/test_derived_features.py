"""Derived and ordinal features: the ONNX graph computes them exactly as the encoder does,
the whole graph keeps parity, and explanations report a derived feature as itself and
still add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from estate.contract.bundle import InputSchema, ordinal_levels
from estate.export.exporter import measure_parity
from estate.export.onnx_graph import build_graph, encoder_graph
from estate.export.shap_tables import export_explainer
from estate.runtime.explainer import Explainer
from estate.runtime.session import run_graph
from estate.training import candidates
from estate.training.encoder import TabularEncoder

QUALITY = ["Po", "Fa", "TA", "Gd", "Ex"]
DERIVED = {
    "total": "base + first + second",
    "age": "sold - built",
    "per_room": "first / rooms",  # rooms is sometimes 0: x/0 and 0/0
    "qual_area": "kitchen * (first + second) - -1",  # reads an ordinal level
}


def frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "base": rng.lognormal(6.5, 0.5, n).round(),
            "first": rng.lognormal(7, 0.3, n).round(),
            "second": np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(6.5, 0.3, n).round()),
            "sold": rng.integers(2006, 2011, n).astype(float),
            "built": rng.integers(1880, 2010, n).astype(float),
            "rooms": rng.integers(0, 4, n).astype(float),
            "kitchen": rng.choice(["Fa", "TA", "Gd", "Ex", None], n),
            "hood": rng.choice(["A", "B", "C"], n),
        }
    )
    data.loc[rng.random(n) < 0.1, "base"] = np.nan  # missing inputs → their medians
    data.loc[:3, "first"] = 0.0  # 0 / 0 where rooms is 0 too
    data.loc[:3, "rooms"] = 0.0
    data.loc[4:6, "rooms"] = 0.0  # x / 0
    return data


def fitted() -> tuple[TabularEncoder, pd.DataFrame]:
    data = frame()
    enc = TabularEncoder(ordinal={"kitchen": QUALITY}, derived=DERIVED).fit(data)
    return enc, data


def onnx_features(enc: TabularEncoder, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    import onnx
    import onnxruntime as ort
    from onnx import helper

    nodes, inits, inputs = encoder_graph(enc.layout)
    out = helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, None])
    model = helper.make_model(
        helper.make_graph(nodes, "enc", inputs, [out], inits),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {"numeric": numeric, "categorical": categorical})[0]
    return result


def test_layout_orders_numeric_ordinal_derived_then_one_hot() -> None:
    enc, _ = fitted()
    layout = enc.layout
    assert layout.names == [
        "base", "first", "second", "sold", "built", "rooms", "kitchen",
        "total", "age", "per_room", "qual_area", "hood=A", "hood=B", "hood=C",
    ]  # fmt: skip
    assert layout.raw_names == [
        "base", "first", "second", "sold", "built", "rooms", "kitchen", "hood",
        "total", "age", "per_room", "qual_area",
    ]  # fmt: skip
    assert [d.inputs for d in enc.derived_features][-1] == ["kitchen", "first", "second"]
    kitchen = enc.categorical_features[0]
    assert kitchen.ordinal == QUALITY
    assert ordinal_levels(kitchen) == {"Po": 1, "Fa": 2, "TA": 3, "Gd": 4, "Ex": 5, "NA": 0}


def test_encoder_computes_formulas_on_what_the_model_sees() -> None:
    enc, data = fitted()
    numeric, categorical = enc.pack(data)
    numbers = enc.layout.numbers(numeric, categorical)
    names = enc.layout.names
    col = {n: numbers[:, i] for i, n in enumerate(names[: enc.layout.number_width])}
    base_median = enc.numeric_features[0].impute
    missing = np.isnan(data["base"].to_numpy())
    expected_total = np.where(missing, base_median, data["base"]) + data["first"] + data["second"]
    np.testing.assert_array_equal(col["total"], expected_total)
    per_room = enc.derived_features[2]
    assert np.all(col["per_room"][:7] == per_room.impute)  # x/0 and 0/0 → its median
    finite = data["first"] / data["rooms"]
    assert per_room.impute == pytest.approx(float(np.median(finite[np.isfinite(finite)])))
    assert per_room.max == pytest.approx(float(finite[np.isfinite(finite)].max()))
    level = data["kitchen"].map({"Fa": 2, "TA": 3, "Gd": 4, "Ex": 5}).fillna(0)  # NA → 0
    np.testing.assert_array_equal(col["kitchen"], level)
    np.testing.assert_array_equal(col["qual_area"], level * (data["first"] + data["second"]) + 1)


@pytest.mark.parametrize(
    "derived",
    [
        {"twice": "first + first"},  # one column read, twice: one Gather, no Split
        {"a": "first * 2", "b": "2 * first - 1"},  # one column shared by two formulas
        {"a": "sold - built", "b": "built - sold", "c": "second / first"},
    ],
)
def test_graph_reads_each_formula_input_once_and_matches_the_encoder(
    derived: dict[str, str],
) -> None:
    """The graph gathers every column the formulas read once (`_formula_inputs`), however
    many formulas read it and however often: same bits as the encoder."""
    data = frame()
    enc = TabularEncoder(ordinal={"kitchen": QUALITY}, derived=derived).fit(data)
    numeric, categorical = enc.pack(data)
    got = onnx_features(enc, numeric, categorical)
    np.testing.assert_array_equal(got, enc.layout.encode(numeric, categorical))
    nodes, _, _ = encoder_graph(enc.layout)
    assert sum(n.op_type == "Gather" and "enc_fcols" in n.input for n in nodes) == 1


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_graph_matches_encoder_on_missing_zero_denominators_unknown_and_overflow() -> None:
    enc, data = fitted()
    probe = data.copy()
    probe.loc[7, "kitchen"] = "Po"  # on the scale, never seen in training
    probe.loc[8, "kitchen"] = "Superb"  # not on the scale: the training mode's level
    probe.loc[9, ["first", "second"]] = [1e308, 1e308]  # overflow → inf → the median
    probe.loc[10, ["sold", "built"]] = np.nan  # both inputs missing
    numeric, categorical = enc.pack(probe)
    want = enc.layout.encode(numeric, categorical)
    got = onnx_features(enc, numeric, categorical)
    np.testing.assert_array_equal(got, want)  # bit-identical: float64 ops, one cast
    start = enc.layout.names.index("total")
    assert np.all(np.isfinite(got[:, start : start + len(DERIVED)]))  # raw 1e308 is inf in f32
    kitchen = enc.layout.names.index("kitchen")
    mode_level = ordinal_levels(enc.categorical_features[0])[enc.categorical_features[0].impute]
    assert got[7, kitchen] == 1.0
    assert got[8, kitchen] == mode_level
    numbers = enc.layout.numbers(numeric, categorical)
    assert numbers[9, start] == enc.derived_features[0].impute  # inf → the median
    assert numbers[10, start + 1] == enc.numeric_features[3].impute - enc.numeric_features[4].impute


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("ridge", {"alpha": 1.0}),
        ("xgboost", {"n_estimators": 40, "max_depth": 4, "learning_rate": 0.2}),
    ],
)
def test_whole_graph_keeps_parity_and_explanations_add_up(kind: str, params: dict) -> None:
    from estate.contract.bundle import ExplainerSpec, Manifest  # noqa: F401

    enc, data = fitted()
    rng = np.random.default_rng(0)
    numeric, categorical = enc.pack(data)
    numbers = enc.layout.numbers(numeric, categorical)
    y = np.log(numbers[:, enc.layout.names.index("total")]) + rng.normal(0, 0.05, len(data))
    Z = enc.transform(data)
    model = candidates.build(kind, params, classifier=False, seed=0).fit(Z, y)
    graph = build_graph(enc.layout, model, classifier=False, log_target=True, doc="t")
    model_bytes = graph.SerializeToString()
    parity = measure_parity(model_bytes, numeric, categorical, np.exp(model.predict(Z)), 1e-4)
    assert parity.max_rel_diff <= 1e-4
    explained = export_explainer(
        enc.layout, model, classifier=False, model_bytes=model_bytes,
        parity_rows=(numeric, categorical), sample_rows=(numeric, categorical),
    )  # fmt: skip
    assert explained is not None
    data_bytes, spec = explained
    assert spec.additivity_max_abs_error < 1e-4
    assert set(spec.global_importance) == set(enc.layout.raw_names)  # derived ones included
    assert spec.global_importance["total"] > 0
    schema = InputSchema(
        numeric=enc.numeric_features, categorical=enc.categorical_features,
        derived=enc.derived_features,
    )  # fmt: skip
    manifest = _manifest(schema, spec)
    explainer = Explainer(manifest, data_bytes)
    phi = explainer.shap(numeric, categorical)
    raw = run_graph(model_bytes, numeric, categorical, output="raw")
    assert np.abs(explainer.base + phi.sum(axis=1) - raw).max() < 1e-4
    values = explainer.derived_values(numeric, categorical)
    np.testing.assert_array_equal(values, enc.layout.numbers(numeric, categorical)[:, -4:])


def _manifest(schema: InputSchema, spec: object) -> object:
    """The fields of a manifest the explainer reads (the rest is training's business)."""
    from types import SimpleNamespace

    output = SimpleNamespace(target_transform="log")
    return SimpleNamespace(name="t", version="v", input=schema, output=output, explainer=spec)
