"""Ames CV experiments for issue 16 (features, tuned members, OOF-fitted blends).

Same rows, split and folds as `estate train --config configs/ames.toml` (the project's
own `prepare`); features are built with pandas here first, then the winners go into the
config. Run: .venv/bin/python bench/experiments/ames_features.py [variant ...]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from estate.training.config import load_config
from estate.training.data import load_table
from estate.training.encoder import TabularEncoder
from estate.training.train import prepare

QUALITY = ["Po", "Fa", "TA", "Gd", "Ex"]
ORDINALS = {
    **{c: QUALITY for c in ["Exter.Qual", "Exter.Cond", "Bsmt.Qual", "Bsmt.Cond", "Heating.QC",
                            "Kitchen.Qual", "Fireplace.Qu", "Garage.Qual", "Garage.Cond", "Pool.QC"]},
    "Bsmt.Exposure": ["No", "Mn", "Av", "Gd"],
    "BsmtFin.Type.1": ["Unf", "LwQ", "Rec", "BLQ", "ALQ", "GLQ"],
    "BsmtFin.Type.2": ["Unf", "LwQ", "Rec", "BLQ", "ALQ", "GLQ"],
    "Garage.Finish": ["Unf", "RFn", "Fin"],
    "Paved.Drive": ["N", "P", "Y"],
    "Functional": ["Sal", "Sev", "Maj2", "Maj1", "Mod", "Min2", "Min1", "Typ"],
}
DERIVED = {
    "Total.SF": lambda f: f["Total.Bsmt.SF"] + f["X1st.Flr.SF"] + f["X2nd.Flr.SF"],
    "Age": lambda f: f["Yr.Sold"] - f["Year.Built"],
    "Remod.Age": lambda f: f["Yr.Sold"] - f["Year.Remod.Add"],
    "Total.Baths": lambda f: f["Full.Bath"] + 0.5 * f["Half.Bath"] + f["Bsmt.Full.Bath"]
    + 0.5 * f["Bsmt.Half.Bath"],
    "Porch.SF": lambda f: f["Open.Porch.SF"] + f["Enclosed.Porch"] + f["X3Ssn.Porch"]
    + f["Screen.Porch"] + f["Wood.Deck.SF"],
}
INTERACT = {
    "Qual.x.Area": lambda f: f["Overall.Qual"] * f["area"],
    "Qual.x.TotalSF": lambda f: f["Overall.Qual"] * (f["Total.Bsmt.SF"] + f["X1st.Flr.SF"] + f["X2nd.Flr.SF"]),
    "Cond.x.Qual": lambda f: f["Overall.Cond"] * f["Overall.Qual"],
}


def ordinal_codes(col: pd.Series, levels: list[str]) -> pd.Series:
    mapping = {v: i + 1 for i, v in enumerate(levels)}
    text = col.map(lambda v: None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v).strip())
    return text.map(lambda v: 0.0 if v in (None, "", "NA") else float(mapping.get(v, np.nan)))


def build(features: pd.DataFrame, train: np.ndarray, variant: set[str]) -> np.ndarray:
    f = features.copy()
    if "derived" in variant:
        for k, fn in DERIVED.items():
            f[k] = fn(features.fillna(features.iloc[train].median(numeric_only=True)))
    if "interact" in variant:
        for k, fn in INTERACT.items():
            f[k] = fn(features.fillna(features.iloc[train].median(numeric_only=True)))
    if "ordinal" in variant or "ordinal+onehot" in variant:
        for c, lv in ORDINALS.items():
            codes = ordinal_codes(features[c], lv)
            if "ordinal+onehot" in variant:
                f[c + ".level"] = codes
            else:
                f[c] = codes
    enc = TabularEncoder(categorical=["MS.SubClass"], log1p="auto").fit(f.iloc[train])
    return enc.transform(f).astype(np.float64)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def oof(make, Z, y, folds):
    out = np.empty_like(y)
    n = len(y)
    for test in folds:
        tr = np.setdiff1d(np.arange(n), test)
        out[test] = make().fit(Z[tr], y[tr]).predict(Z[test])
    return out


def main() -> None:
    config = load_config("configs/ames.toml")
    data = prepare(config, load_table(config.data))
    y = data.y[data.train]
    folds = data.folds
    variants = sys.argv[1:] or ["base"]
    from sklearn.linear_model import ElasticNet, Lasso, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBRegressor

    for v in variants:
        parts = set(v.split(","))
        Z = build(data.features, data.train, parts)[data.train]
        results = {}
        t0 = time.time()
        for alpha in (2.0, 5.0, 10.0):
            results[f"ridge a={alpha}"] = oof(lambda: make_pipeline(StandardScaler(with_std=False), Ridge(alpha=alpha)), Z, y, folds)
        for alpha in (0.0003, 0.0005, 0.001):
            results[f"lasso a={alpha}"] = oof(lambda: make_pipeline(StandardScaler(), Lasso(alpha=alpha, max_iter=20000)), Z, y, folds)
        if "xgb" in parts:
            for depth, n, lr in [(3, 2000, 0.02), (4, 800, 0.03), (5, 500, 0.04)]:
                results[f"xgb d={depth} n={n}"] = oof(lambda: XGBRegressor(n_estimators=n, learning_rate=lr, max_depth=depth, subsample=0.7, colsample_bytree=0.3, min_child_weight=1, reg_lambda=2.0, n_jobs=2, tree_method="hist", random_state=42), Z, y, folds)
        for k, p in results.items():
            print(f"{v:30s} {k:24s} {rmse(y, p):.4f}", flush=True)
        names = list(results)
        P = np.column_stack([results[k] for k in names])
        w, _ = nnls(P, y)
        print(f"{v:30s} NNLS blend {rmse(y, P @ w):.4f} weights {dict((n, round(x, 3)) for n, x in zip(names, w) if x > 0)} ({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
