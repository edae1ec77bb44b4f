"""The ONNX graph reproduces the fitted pipeline, for the encoder and every candidate type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from estate.contract.errors import ExportError
from estate.export.exporter import measure_parity
from estate.export.onnx_graph import build_graph, encoder_graph
from estate.runtime.session import run_graph
from estate.training import candidates
from estate.training.encoder import TabularEncoder


def synthetic(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed numeric/categorical data with missing values, skew and a numeric-coded category."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "area": rng.lognormal(7, 0.4, n).round(),
            "lat": 42.0 + rng.random(n) * 0.1,  # fine-grained floats: float32 rounding matters
            "year": rng.integers(1900, 2010, n).astype(float),
            "hood": rng.choice(["A", "B", "C", "D "], n),
            "code": rng.choice([20, 60, 120], n),
            "pool": rng.choice(["Ex", None], n, p=[0.1, 0.9]),
        }
    )
    frame.loc[rng.random(n) < 0.1, "year"] = np.nan
    y = (
        0.8 * np.log(frame["area"])
        + 0.01 * frame["year"].fillna(1970)
        + frame["hood"].map({"A": 0.1, "B": 0.3, "C": -0.2, "D ": 0.0})
        + 5 * (frame["lat"] - 42)
        + rng.normal(0, 0.05, n)
    ).to_numpy()
    return frame, y


def test_encoder_graph_matches_numpy_reference_including_unseen_and_missing() -> None:
    import onnx
    from onnx import helper

    frame, _ = synthetic()
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    assert [f.name for f in enc.categorical_features] == ["hood", "code", "pool"]
    assert {f.name for f in enc.numeric_features if f.log1p} == {"area"}
    nodes, inits, inputs = encoder_graph(enc.layout)
    out = helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, None])
    graph = helper.make_graph(nodes, "enc", inputs, [out], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probe = frame.copy()
    probe.loc[0, "hood"] = "Z"  # unseen category → all zeros for that feature
    probe.loc[1, "area"] = np.nan  # missing numeric → training median
    numeric, categorical = enc.pack(probe)
    (got,) = session.run(None, {"numeric": numeric, "categorical": categorical})
    expected = enc.transform_packed(numeric, categorical)
    np.testing.assert_array_equal(got, expected)
    hood_cols = [i for i, n in enumerate(enc.encoded_names) if n.startswith("hood=")]
    assert got[0, hood_cols].sum() == 0
    assert got[1, 0] == np.float32(np.log(enc.numeric_features[0].impute + 1))


REGRESSORS = [
    ("ridge", {"alpha": 1.0}),
    ("ridge", {"alpha": 1.0, "scale": False}),
    ("random_forest", {"n_estimators": 20, "max_features": 0.5}),
    ("xgboost", {"n_estimators": 60, "max_depth": 4}),
]


@pytest.mark.parametrize(("estimator", "params"), REGRESSORS, ids=lambda v: str(v))
@pytest.mark.parametrize("log_target", [True, False])
def test_regressor_parity(estimator: str, params: dict[str, object], log_target: bool) -> None:
    frame, y = synthetic()
    if not log_target:
        y = y * 10_000  # a price-like scale
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    model = candidates.build(estimator, dict(params), classifier=False, seed=0)
    model.fit(enc.transform(frame), y)
    graph = build_graph(enc.layout, model, classifier=False, log_target=log_target, doc="test")
    test, _ = synthetic(200, seed=1)
    raw = model.predict(enc.transform(test))
    reference = np.exp(raw) if log_target else raw
    parity = measure_parity(graph.SerializeToString(), *enc.pack(test), reference, 1e-4)
    assert parity.max_rel_diff <= 1e-4
    assert parity.rows == 200


def test_blend_parity() -> None:
    frame, y = synthetic()
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    members = {"r": ("ridge", {"alpha": 1.0}), "x": ("xgboost", {"n_estimators": 40})}
    model = candidates.build(
        "blend",
        {"members": ["r", "x"], "weights": [0.3, 0.7]},
        classifier=False,
        seed=0,
        members=members,
    ).fit(enc.transform(frame), y)
    graph = build_graph(enc.layout, model, classifier=False, log_target=True, doc="test")
    reference = np.exp(model.predict(enc.transform(frame)))
    assert (
        measure_parity(graph.SerializeToString(), *enc.pack(frame), reference, 1e-4).max_rel_diff
        <= 1e-4
    )


CLASSIFIERS = [
    ("logistic", {"C": 1.0}),
    ("random_forest", {"n_estimators": 20}),
    ("xgboost", {"n_estimators": 40, "max_depth": 3}),
]


@pytest.mark.parametrize(("estimator", "params"), CLASSIFIERS, ids=lambda v: str(v))
def test_classifier_parity(estimator: str, params: dict[str, object]) -> None:
    frame, y = synthetic()
    labels = (y > np.median(y)).astype(float)
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    model = candidates.build(estimator, dict(params), classifier=True, seed=0)
    model.fit(enc.transform(frame), labels)
    graph = build_graph(enc.layout, model, classifier=True, log_target=False, doc="test")
    reference = model.predict_proba(enc.transform(frame))[:, 1]
    got = run_graph(graph.SerializeToString(), *enc.pack(frame))
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_parity_failure_refuses_export() -> None:
    frame, y = synthetic()
    enc = TabularEncoder().fit(frame)
    model = candidates.build("ridge", {"alpha": 1.0}, classifier=False, seed=0).fit(
        enc.transform(frame), y
    )
    graph = build_graph(enc.layout, model, classifier=False, log_target=True, doc="test")
    wrong = np.exp(model.predict(enc.transform(frame))) * 1.01
    with pytest.raises(ExportError, match="parity failed"):
        measure_parity(graph.SerializeToString(), *enc.pack(frame), wrong, 1e-4)


@pytest.fixture(scope="module")
def rare_events() -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """A logistic model of a rare event (most probabilities far below 1e-3): its graph,
    packed rows, and the graph's own probabilities on them."""
    frame, y = synthetic(600)
    labels = (y > np.quantile(y, 0.97)).astype(float)
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    model = candidates.build("logistic", {"C": 10.0}, classifier=True, seed=0)
    model.fit(enc.transform(frame), labels)
    graph = build_graph(enc.layout, model, classifier=True, log_target=False, doc="test")
    numeric, categorical = enc.pack(frame)
    model_bytes = graph.SerializeToString()
    got = run_graph(model_bytes, numeric, categorical)
    assert np.mean(got < 1e-3) > 0.5
    return model_bytes, numeric, categorical, got


def test_probabilities_within_float32_rounding_pass_whatever_their_odds(
    rare_events: tuple[bytes, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """onnxruntime returns small probabilities as 1 - v: an absolute error of ~6e-8, which
    is a large relative one on 1e-5. The old relative rule refused every such model."""
    model_bytes, numeric, categorical, got = rare_events
    reference = got + np.where(np.arange(got.size) % 2, 6e-8, -6e-8)
    reference = np.clip(reference, 1e-12, 1.0)
    small = (got < 1e-4) & (got > 1e-9)
    assert np.max(np.abs(reference - got)[small] / got[small]) > 1e-3
    parity = measure_parity(model_bytes, numeric, categorical, reference, 1e-4, probability=True)
    assert parity.tolerance_abs == 1e-6
    assert parity.max_abs_diff <= 1e-7
    assert parity.max_rel_diff == 0.0  # every row settled by the absolute rule
    with pytest.raises(ExportError, match="relative rule"):
        measure_parity(model_bytes, numeric, categorical, reference, 1e-4)  # as regression


def test_a_small_probability_with_the_wrong_odds_fails_and_names_both_rules(
    rare_events: tuple[bytes, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """1 % off in odds on a 1e-3 probability is 1e-5 absolute: above the absolute floor,
    and far above the relative tolerance on the odds."""
    model_bytes, numeric, categorical, got = rare_events
    row = int(np.argmin(np.abs(got - 1e-3)))
    reference = got.copy()
    reference[row] = got[row] * 1.01
    with pytest.raises(ExportError) as failed:
        measure_parity(model_bytes, numeric, categorical, reference, 1e-4, probability=True)
    message = str(failed.value)
    assert f"row {row}:" in message
    assert "> 1e-06 (absolute rule)" in message
    assert "> 0.0001 (relative rule on the odds)" in message
    assert "nothing was written" in message
    loose = measure_parity(
        model_bytes, numeric, categorical, reference, 0.02, probability=True
    )  # a 2 % tolerance on the odds accepts it, and says how far it was
    assert loose.max_rel_diff == pytest.approx(np.log(1.01), rel=1e-2)


@pytest.mark.parametrize(
    ("shift", "passes"),
    [
        (2e-6, True),  # above the absolute floor, but 8e-6 in log-odds at p = 0.5
        (1e-4, False),  # 4e-4 in log-odds: both rules fail
    ],
)
def test_mid_range_probabilities_are_judged_on_their_odds(shift: float, passes: bool) -> None:
    frame, y = synthetic()
    labels = (y > np.median(y)).astype(float)
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    model = candidates.build("logistic", {"C": 1.0}, classifier=True, seed=0)
    model.fit(enc.transform(frame), labels)
    model_bytes = build_graph(
        enc.layout, model, classifier=True, log_target=False, doc="test"
    ).SerializeToString()
    got = run_graph(model_bytes, *enc.pack(frame))
    row = int(np.argmin(np.abs(got - 0.5)))
    reference = got.copy()
    reference[row] += shift
    if passes:
        parity = measure_parity(model_bytes, *enc.pack(frame), reference, 1e-4, probability=True)
        assert parity.max_abs_diff == pytest.approx(shift, rel=1e-3)
        assert parity.max_rel_diff == pytest.approx(4 * shift, rel=1e-2)
    else:
        with pytest.raises(ExportError, match=f"row {row}:.*both rules fail"):
            measure_parity(model_bytes, *enc.pack(frame), reference, 1e-4, probability=True)


def test_non_finite_reference_or_output_never_passes(
    rare_events: tuple[bytes, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    model_bytes, numeric, categorical, got = rare_events
    reference = got.copy()
    reference[3] = np.nan
    for probability in (True, False):
        with pytest.raises(ExportError, match="row 3:"):
            measure_parity(
                model_bytes, numeric, categorical, reference, 1e-4, probability=probability
            )


@pytest.mark.parametrize("estimator", ["xgboost", "blend"])
def test_the_interval_scale_is_a_second_output_with_its_own_parity(estimator: str) -> None:
    """The adaptive interval's scale head (estate.export.scale_graph) runs in the same
    graph as the model and matches its numpy reference; a wrong reference fails export."""
    from estate.contract.bundle import PREDICTION_OUTPUT, RAW_OUTPUT, SCALE_OUTPUT
    from estate.export.exporter import measure_scale_parity
    from estate.runtime.session import open_session
    from estate.training.adaptive import fit_scale

    frame, y = synthetic()
    enc = TabularEncoder(categorical=["code"]).fit(frame)
    Z = enc.transform(frame)
    members = {"r": ("ridge", {"alpha": 1.0}), "x": ("xgboost", {"n_estimators": 40})}
    params = {"members": ["r", "x"]} if estimator == "blend" else {"n_estimators": 40}
    model = candidates.build(estimator, params, classifier=False, seed=0, members=members)
    model.fit(Z, y)
    head = fit_scale(Z, y - model.predict(Z), seed=0)
    graph = build_graph(
        enc.layout, model, classifier=False, log_target=True, doc="test", scale=head
    )
    assert [o.name for o in graph.graph.output] == [PREDICTION_OUTPUT, RAW_OUTPUT, SCALE_OUTPUT]
    test, _ = synthetic(200, seed=1)
    rows = enc.pack(test)
    prediction, raw, scale = open_session(graph.SerializeToString()).run(
        *rows, [PREDICTION_OUTPUT, RAW_OUTPUT, SCALE_OUTPUT]
    )
    reference = head.predict(enc.transform(test))
    np.testing.assert_allclose(scale, reference, rtol=1e-5)  # float32 sums of 100 trees
    assert len(np.unique(scale)) > 1  # per row, not one number
    assert (head.low <= scale).all()
    assert (scale <= head.high).all()
    np.testing.assert_allclose(prediction, np.exp(model.predict(enc.transform(test))), rtol=1e-4)
    np.testing.assert_allclose(raw, np.log(prediction), rtol=1e-6)
    model_bytes = graph.SerializeToString()
    assert measure_scale_parity(model_bytes, *rows, reference, 1e-4) <= 1e-5
    with pytest.raises(ExportError, match="parity failed on the interval scale"):
        measure_scale_parity(model_bytes, *rows, reference * 1.01, 1e-4)
