"""What drives this house's value: exact SHAP from the bundle, or a what-if fallback.

With an explainer in the bundle (every regression model we train), the drivers are the
`explain` function's own contributions: SHAP values per raw feature, turned into dollar
effects applied largest first from the average house's price, so they add up exactly to
the estimate. Without one, each feature the user gave is reset to its typical value
(training median or most common value) and re-predicted in one ONNX call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from estate.runtime.explanations import explain_instances
from estate.runtime.serving_model import ServingModel

SHAP_METHOD = (
    "exact SHAP contributions from the model (the explain function): dollar effects "
    "applied largest first from the average house's price add up to the estimate"
)
WHAT_IF_METHOD = (
    "what-if, one feature at a time: each feature you gave reset to the training "
    "median or most common value and re-predicted; effects interact and do not add up"
)


@dataclass(frozen=True)
class Driver:
    """One feature's effect on the predicted price, in dollars (positive raises it)."""

    feature: str
    value: float | str | None
    baseline: float | str
    dollars: float
    given: bool = True
    label: str | None = None  # readable name (the config's), else show `feature`

    @property
    def shown(self) -> str:
        return self.label or self.feature

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        if self.label is None:
            del found["label"]
        return found


def baselines(model: ServingModel) -> dict[str, float | str]:
    """The value each feature takes when the user does not give it."""
    out: dict[str, float | str] = {f.name: f.impute for f in model.numeric}
    out.update({c.name: c.impute for c in model.categorical})
    out.update({d.name: d.impute for d in model.manifest.input.derived_features()})
    return out


def top_drivers(
    model: ServingModel, instance: dict[str, Any], k: int, max_field_errors: int
) -> tuple[str, list[Driver], float | None]:
    """(method, the `k` features that move the estimate most, the average house's price).

    The average price is None for the what-if method, which has no such base.
    """
    if _explains_dollars(model):
        return SHAP_METHOD, *_shap_drivers(model, instance, k, max_field_errors)
    return WHAT_IF_METHOD, _what_if_drivers(model, instance, k), None


def _explains_dollars(model: ServingModel) -> bool:
    """A loaded explainer whose contributions are in the price's own (raw) scale."""
    spec = model.manifest.explainer
    return (
        model.explainer is not None
        and model.manifest.task == "regression"
        and spec is not None
        and spec.scale == "raw"
    )


def _shap_drivers(
    model: ServingModel, instance: dict[str, Any], k: int, max_field_errors: int
) -> tuple[list[Driver], float]:
    (answer,) = explain_instances(model, [instance], top_k=k, max_field_errors=max_field_errors)
    base = baselines(model)
    out = model.manifest.output.name
    drivers = [
        Driver(
            c["feature"],
            c["value"],
            base[c["feature"]],
            float(c["effect"]),
            given=all(instance.get(n) is not None for n in c.get("inputs", [c["feature"]])),
            label=c.get("label"),
        )
        for c in answer["contributions"]
    ]
    return drivers, float(answer["base_value"].get(out, answer["base_value"]["shap"]))


def _what_if_drivers(model: ServingModel, instance: dict[str, Any], k: int) -> list[Driver]:
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
        Driver(name, value, base[name], price - p.value, label=model.labels.get(name))
        for (name, value), p in zip(given, predictions[1:], strict=True)
    ]
    drivers.sort(key=lambda d: abs(d.dollars), reverse=True)
    return drivers[:k]
