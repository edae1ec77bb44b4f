"""Candidate estimators, built from the config by name.

Every estimator here has an ONNX converter (skl2onnx, onnxmltools for XGBoost), so any
candidate that wins can be exported. ``blend`` averages other candidates (a voting
ensemble), which often beats each member on small tabular data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from estate.contract.errors import ConfigError

Factory = Callable[[dict[str, Any], int], Any]

#: ``params.weights`` of a blend whose weights training fits on out-of-fold predictions.
OOF_WEIGHTS = "oof"


def oof_weights(predictions: list[Any], y: Any) -> list[float]:
    """Blend weights fitted on out-of-fold predictions: least squares with weights >= 0
    summing to 1 (a weighted mean, as the voting ensemble computes), by NNLS with the sum
    as a heavily weighted extra equation. Stacking without a second model to export."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    P = np.column_stack(predictions).astype(np.float64)
    target = np.asarray(y, dtype=np.float64)
    heavy = 1e3 * np.sqrt(target.size)
    A = np.vstack([P, np.full((1, P.shape[1]), heavy)])
    b = np.append(target, heavy)
    fit = LinearRegression(positive=True, fit_intercept=False).fit(A, b)  # NNLS
    weights = np.asarray(fit.coef_, dtype=np.float64)
    weights = weights / weights.sum()
    return [round(float(w), 6) for w in weights]


def _ridge(params: dict[str, Any], seed: int) -> Any:
    """Ridge; ``scale = false`` leaves one-hot columns unscaled (rare categories then get
    shrunk harder, which suits one-hot features). Columns are always centred: the same
    model, but a float32 ONNX graph no longer cancels large terms against the intercept."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scale = bool(params.pop("scale", True))
    return Pipeline([("scale", StandardScaler(with_std=scale)), ("ridge", Ridge(**params))])


def _sparse_linear(kind: str) -> Factory:
    """Lasso or elastic net, centred (and scaled unless ``scale = false``) like ridge:
    the L1 penalty drops weak one-hot and derived columns, which ridge only shrinks."""

    def factory(params: dict[str, Any], seed: int) -> Any:
        from sklearn.linear_model import ElasticNet, Lasso
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        scale = bool(params.pop("scale", True))
        model = (Lasso if kind == "lasso" else ElasticNet)(
            **{"max_iter": 50_000, "random_state": seed, **params}
        )
        return Pipeline([("scale", StandardScaler(with_std=scale)), (kind, model)])

    return factory


def _logistic(params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"max_iter": 2000, **params}
    return Pipeline([("scale", StandardScaler()), ("logistic", LogisticRegression(**params))])


def _forest_regressor(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**{"random_state": seed, "n_jobs": -1, **params})


def _forest_classifier(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{"random_state": seed, "n_jobs": -1, **params})


def _xgb_regressor(params: dict[str, Any], seed: int) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(**{"random_state": seed, "n_jobs": -1, "tree_method": "hist", **params})


def _xgb_classifier(params: dict[str, Any], seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(**{"random_state": seed, "n_jobs": -1, "tree_method": "hist", **params})


REGRESSORS: Mapping[str, Factory] = {
    "ridge": _ridge,
    "lasso": _sparse_linear("lasso"),
    "elastic_net": _sparse_linear("elastic_net"),
    "random_forest": _forest_regressor,
    "xgboost": _xgb_regressor,
}
CLASSIFIERS: Mapping[str, Factory] = {
    "logistic": _logistic,
    "random_forest": _forest_classifier,
    "xgboost": _xgb_classifier,
}


def build(
    estimator: str,
    params: dict[str, Any],
    *,
    classifier: bool,
    seed: int,
    members: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
) -> Any:
    """A fresh, unfitted estimator. ``blend`` takes ``params.members`` (candidate names)."""
    table = CLASSIFIERS if classifier else REGRESSORS
    if estimator == "blend":
        names = list(params.get("members", []))
        weights = params.get("weights")
        if isinstance(weights, str):
            if weights != OOF_WEIGHTS:
                raise ConfigError(
                    f"A blend's params.weights is a list of numbers or {OOF_WEIGHTS!r} (fitted "
                    f"on out-of-fold predictions); got {weights!r}."
                )
            weights = None  # training fits them before building the blend it exports
        if weights is not None:
            import numpy as np

            weights = np.asarray(weights, dtype=float)  # skl2onnx needs an array
        if len(names) < 2 or members is None or any(n not in members for n in names):
            raise ConfigError(
                f"A blend needs params.members naming two or more other candidates; got {names}."
            )
        parts = [
            (n, build(members[n][0], dict(members[n][1]), classifier=classifier, seed=seed))
            for n in names
        ]
        if classifier:
            from sklearn.ensemble import VotingClassifier

            return VotingClassifier(parts, voting="soft", weights=weights)
        from sklearn.ensemble import VotingRegressor

        return VotingRegressor(parts, weights=weights)
    if estimator not in table:
        kind = "classification" if classifier else "regression"
        raise ConfigError(
            f"Unknown {kind} estimator {estimator!r}; choose one of {sorted(table)} or 'blend'."
        )
    return table[estimator](dict(params), seed)
