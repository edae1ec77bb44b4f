"""The BigQuery ML query's interval and label columns against serving's own rule.

No BigQuery is reachable, so the columns `output_columns` writes are evaluated here by a
small interpreter of the SQL they use, with BigQuery's documented semantics for it:
NULL in, NULL out (three-valued OR); ``GREATEST``/``LEAST`` answer NaN when an argument
is NaN; ``SAFE.EXP`` answers NULL where ``EXP`` would overflow (an error); ``IS_NAN``;
``IF``. Its answers must be serving's (`estate.runtime.outputs.intervals` / `labels`) on
thousands of raw values and scales, the awkward ones included.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from estate.batch.bqml import bqml_sql, output_columns
from estate.contract.bundle import AdaptiveInterval, DecisionThreshold, Manifest
from estate.runtime.outputs import intervals, labels

Value = float | str | bool | None
TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:e[-+]?\d+)?|\d+e[-+]?\d+|\d+)"
    r"|(?P<str>'(?:[^'\\]|\\.)*')|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>>=|[-+*(),]))"
)


def tokens(sql: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(sql.rstrip()):
        match = TOKEN.match(sql, at)
        assert match, f"the evaluator does not know {sql[at : at + 20]!r}"
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        at = match.end()
    return out


class Evaluator:
    """Recursive descent over the columns' SQL, one row's values bound by name."""

    def __init__(self, sql: str, row: dict[str, Value]) -> None:
        self.items, self.at, self.row = tokens(sql), 0, row

    def run(self) -> Value:
        value = self.disjunction()
        assert self.at == len(self.items), self.items[self.at :]
        return value

    def peek(self) -> str | None:
        return self.items[self.at][1] if self.at < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        text = self.items[self.at][1]
        assert expected is None or text.upper() == expected, (text, expected)
        self.at += 1
        return text

    def disjunction(self) -> Value:
        values = [self.comparison()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            values.append(self.comparison())
        if len(values) == 1:
            return values[0]
        if any(v is True for v in values):
            return True
        return None if any(v is None for v in values) else False

    def comparison(self) -> Value:
        left = self.postfix()
        if self.peek() == ">=":
            self.take()
            right = self.postfix()
            if left is None or right is None:
                return None
            assert isinstance(left, float)
            assert isinstance(right, float)
            return left >= right
        return left

    def postfix(self) -> Value:
        value = self.additive()
        if (self.peek() or "").upper() == "IS":
            self.take()
            self.take("NULL")
            return value is None
        return value

    def additive(self) -> Value:
        value = self.product()
        while self.peek() in ("+", "-"):
            op, right = self.take(), self.product()
            value = arithmetic(op, value, right)
        return value

    def product(self) -> Value:
        value = self.primary()
        while self.peek() == "*":
            self.take()
            value = arithmetic("*", value, self.primary())
        return value

    def primary(self) -> Value:
        kind, text = self.items[self.at]
        self.at += 1
        if kind == "num":
            return float(text)
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if text == "(":
            value = self.disjunction()
            self.take(")")
            return value
        if text.upper() == "NULL":
            return None
        if self.peek() == "(":
            self.take("(")
            args = [self.disjunction()]
            while self.peek() == ",":
                self.take()
                args.append(self.disjunction())
            self.take(")")
            return call(text.upper(), args)
        return self.row[text]


def arithmetic(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    assert isinstance(a, float)
    assert isinstance(b, float)
    return a + b if op == "+" else a - b if op == "-" else a * b


def call(name: str, args: list[Value]) -> Value:
    if name == "IF":
        return args[1] if args[0] is True else args[2]
    if any(a is None for a in args):
        return None
    numbers = [a for a in args if isinstance(a, float)]
    assert len(numbers) == len(args), (name, args)
    if name == "IS_NAN":
        return math.isnan(numbers[0])
    if name in ("GREATEST", "LEAST"):
        if any(math.isnan(x) for x in numbers):
            return math.nan
        return max(numbers) if name == "GREATEST" else min(numbers)
    if name == "SAFE.EXP":
        try:
            return math.exp(numbers[0])
        except OverflowError:  # EXP's overflow error; SAFE. turns it into NULL
            return None
    raise AssertionError(f"the evaluator does not know {name}")


def evaluate(
    manifest: Manifest, raw: np.ndarray, scale: np.ndarray | None
) -> dict[str, list[Value]]:
    columns = dict(output_columns(manifest))
    out: dict[str, list[Value]] = {name: [] for name in columns}
    for i, r in enumerate(raw.tolist()):
        row: dict[str, Value] = {"raw": r, "prediction": r}
        if scale is not None:
            value = scale[i]
            row["scale"] = None if value is None else float(value)
        for name, sql in columns.items():
            out[name].append(Evaluator(sql, row).run())
    return out


def awkward_raws(rng: np.random.Generator, centre: float, spread: float) -> np.ndarray:
    """Float32 like the graph's ``raw`` output: typical values, extremes and non-finite."""
    typical = rng.normal(centre, spread, 3000)
    edges = [0.0, -0.0, 1e-30, -1e-30, 700.0, 709.7, 710.0, 800.0, -800.0]
    edges += [math.nan, math.inf, -math.inf, 3e38, -3e38]
    return np.concatenate([typical, edges]).astype(np.float32).astype(np.float64)


def awkward_scales(rng: np.random.Generator, spec: AdaptiveInterval, n: int) -> np.ndarray:
    low, high = spec.scale_min, spec.scale_max
    values = rng.uniform(-high, 3 * high, n)
    special = [low, high, np.nextafter(low, 0), np.nextafter(high, 1), 0.0, -0.0, -1.0]
    special += [math.nan, math.inf, -math.inf, 1e-45, 3e38]
    values[: len(special)] = special
    rng.shuffle(values)
    return values.astype(np.float32).astype(np.float64)


def same_bounds(sql: list[Value], served: np.ndarray) -> None:
    for got, want in zip(sql, served.tolist(), strict=True):
        if math.isnan(want):
            assert isinstance(got, float), (got, want)
            assert math.isnan(got), (got, want)
        elif math.isinf(want) and want > 0 and got is None:
            continue  # SAFE.EXP: NULL where serving's exp overflows to +inf
        else:
            assert isinstance(got, float)
            assert got == pytest.approx(want, rel=1e-15, abs=0.0), (got, want)


def variants(m: Manifest) -> dict[str, Manifest]:
    """The served bundle and the interval shapes a bundle can have."""
    assert m.interval is not None
    adaptive = m.interval.adaptive or AdaptiveInterval(
        quantile=1.37,
        scale_min=0.04,
        scale_max=0.61,
        scale_model="test",
        calibration_rows=1,
        holdout_coverage=0.9,
        holdout_median_width=1.0,
    )
    output = m.output.model_copy(update={"target_transform": "none"})
    fixed = m.interval.model_copy(update={"adaptive": None})
    normalized = m.interval.model_copy(update={"adaptive": adaptive})
    return {
        "adaptive log": m.model_copy(update={"interval": normalized}),
        "fixed log": m.model_copy(update={"interval": fixed}),
        "adaptive none": m.model_copy(update={"interval": normalized, "output": output}),
        "fixed none": m.model_copy(update={"interval": fixed, "output": output}),
    }


@pytest.mark.parametrize("shape", ["adaptive log", "fixed log", "adaptive none", "fixed none"])
def test_the_interval_columns_are_servings_interval(ames_manifest: Manifest, shape: str) -> None:
    manifest = variants(ames_manifest)[shape]
    assert manifest.interval is not None
    rng = np.random.default_rng(16)
    raw = awkward_raws(rng, 12.0, 0.4)
    spec = manifest.interval.adaptive
    scale = None if spec is None else awkward_scales(rng, spec, len(raw))
    with np.errstate(over="ignore"):  # exp(800): serving's +inf, the query's NULL
        bounds = intervals(raw, manifest, scale)
    assert bounds is not None
    got = evaluate(manifest, raw, scale)
    assert set(got) == {"lower", "upper"}
    same_bounds(got["lower"], bounds[:, 0])
    same_bounds(got["upper"], bounds[:, 1])
    finite = np.isfinite(bounds).all(axis=1)
    assert finite.sum() > 2900  # the comparison covered the ordinary rows, not only edges


def test_a_null_scale_gets_the_widest_band(ames_manifest: Manifest) -> None:
    """BigQuery can hand the query a NULL where serving only ever sees NaN: both widest."""
    manifest = variants(ames_manifest)["adaptive log"]
    raw = np.array([12.0, 12.0])
    got = evaluate(manifest, raw, np.array([None, math.nan], dtype=object))
    assert got["lower"][0] == got["lower"][1]
    assert got["upper"][0] == got["upper"][1]
    assert manifest.interval is not None
    assert manifest.interval.adaptive is not None
    widest = intervals(raw[:1], manifest, np.array([manifest.interval.adaptive.scale_max]))
    assert widest is not None
    assert got["upper"][0] == pytest.approx(widest[0, 1], rel=1e-15)


def test_the_label_column_is_servings_label(ames_manifest: Manifest) -> None:
    output = ames_manifest.output.model_copy(
        update={"positive_label": "sells within 30 days", "negative_label": None}
    )
    threshold = DecisionThreshold(value=0.37, criterion="test", holdout_metrics={})
    manifest = ames_manifest.model_copy(
        update={"threshold": threshold, "interval": None, "output": output}
    )
    rng = np.random.default_rng(7)
    probabilities = np.concatenate([rng.uniform(0, 1, 2000), [0.37, np.nextafter(0.37, 0)]])
    probabilities = probabilities.astype(np.float32).astype(np.float64)
    got = evaluate(manifest, probabilities, None)
    served = labels(probabilities, manifest)
    assert served is not None
    assert got["label"] == served.tolist()
    assert set(got["label"]) == {"sells within 30 days", "not sells within 30 days"}


def test_the_query_selects_the_columns_around_ml_predict(ames_manifest: Manifest) -> None:
    sql = bqml_sql(ames_manifest, "gs://b/m.onnx", "estate.ames", "estate.listings", "PID")
    for name, expression in output_columns(ames_manifest):
        assert f"  {expression} AS `{name}`" in sql
    select = sql.index("SELECT `PID`, prediction AS `price`, raw,")
    assert select < sql.index("AS `lower`") < sql.index("AS `upper`") < sql.index("FROM ML.PREDICT")
    assert ames_manifest.interval is not None
    if ames_manifest.interval.adaptive is not None:
        assert "IS_NAN(scale)" in sql


def constants(sql: str) -> list[float]:
    return [float(t) for kind, t in tokens(sql) if kind == "num"]


def test_the_constants_are_the_manifests_to_the_last_bit(ames_manifest: Manifest) -> None:
    for manifest in variants(ames_manifest).values():
        spec = manifest.interval
        assert spec is not None
        lower = dict(output_columns(manifest))["lower"]
        if spec.adaptive is None:
            assert constants(lower) == [spec.quantile]
        else:
            a = spec.adaptive
            assert constants(lower) == [a.quantile, a.scale_max, a.scale_min, a.scale_max]


def test_a_bundle_without_interval_or_label_adds_no_column(ames_manifest: Manifest) -> None:
    bare = ames_manifest.model_copy(update={"interval": None, "threshold": None})
    assert output_columns(bare) == []
    sql = bqml_sql(bare, "gs://b/m.onnx", "estate.ames", "estate.listings", "PID")
    assert "SELECT `PID`, prediction AS `price`, raw\nFROM ML.PREDICT(" in sql
