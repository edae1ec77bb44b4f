"""What drives this house's value: one function, so its method can be swapped in one place.

Today: a one-at-a-time what-if. Each feature the user gave is reset to the training
median (numbers) or most common value (categories), all rows are re-predicted in one
ONNX call, and the price difference is that feature's effect. It is not a SHAP
decomposition: effects interact and do not add up to the price. Replace the body with
``functions.explain.explain_instances`` when it exists; the `Driver` shape stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from functions.model import ServingModel

METHOD = (
    "what-if, one feature at a time: each feature you gave reset to the training "
    "median or most common value and re-predicted; effects interact and do not add up"
)


@dataclass(frozen=True)
class Driver:
    """One feature's effect on the predicted price, in dollars (positive raises it)."""

    feature: str
    value: float | str
    baseline: float | str
    dollars: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def baselines(model: ServingModel) -> dict[str, float | str]:
    """The value each feature takes when the user does not give it."""
    out: dict[str, float | str] = {f.name: f.impute for f in model.numeric}
    out.update({c.name: c.impute for c in model.categorical})
    return out


def top_drivers(model: ServingModel, instance: dict[str, Any], k: int = 5) -> list[Driver]:
    """The `k` given features that move the estimate most, largest effect first."""
    base = baselines(model)
    given = [
        (name, value)
        for name, value in instance.items()
        if value is not None and name in base and value != base[name]
    ]
    if not given:
        return []
    rows = [instance] + [{**instance, name: base[name]} for name, _ in given]
    predictions = model.predict(rows)
    price = predictions[0].value
    drivers = [
        Driver(name, value, base[name], price - p.value)
        for (name, value), p in zip(given, predictions[1:], strict=True)
    ]
    drivers.sort(key=lambda d: abs(d.dollars), reverse=True)
    return drivers[:k]
