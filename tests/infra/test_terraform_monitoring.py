"""Offline checks of infra/ (Terraform), monitoring: the prediction log sink selects the
lines predict writes, and alerts watch the error rate and p95 latency."""

from __future__ import annotations

import json
import re

import pytest
from terraform_config import Terraform, load_terraform


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def test_the_prediction_sink_selects_the_lines_predict_writes(tf: Terraform) -> None:
    """The sink's filter names fields of `PredictionLogLine` and of `PredictionBatchLine`,
    with the values they are written with."""
    from estate.contract.predlog import EVENT, LoggedModel, PredictionBatchLine, PredictionLogLine

    sink = tf.resource("google_logging_project_sink.predictions")
    assert "${var.prediction_log_filter}" in sink["filter"]
    clauses = re.findall(
        r'jsonPayload\.(\w+)=\\?"([^"\\]*)\\?"', tf.variables["prediction_log_filter"]["default"]
    )
    assert clauses, "prediction_log_filter tests no jsonPayload field"
    model = LoggedModel(name="ames", version="v1")
    line = PredictionLogLine(event=EVENT, model=model, features={}, output={})
    batch = PredictionBatchLine(
        event=EVENT, kind="batch", model=model, instances=[{}], outputs={}, count=1
    )
    for written in (json.loads(line.to_json()), json.loads(batch.to_json())):
        for field, value in clauses:
            assert str(written.get(field)) == value, (field, value)


def test_alerts_watch_error_rate_and_p95_latency_from_log_metrics(tf: Terraform) -> None:
    error = tf.resource("google_monitoring_alert_policy.error_rate")["conditions"][0]
    threshold = error["condition_threshold"][0]
    assert "google_logging_metric.server_errors.name" in threshold["filter"]
    assert "google_logging_metric.requests.name" in threshold["denominator_filter"]
    errors = tf.resource("google_logging_metric.server_errors")
    assert errors["filter"].endswith("AND httpRequest.status>=500")
    latency = tf.resource("google_monitoring_alert_policy.latency_p95")["conditions"][0]
    aggregation = latency["condition_threshold"][0]["aggregations"][0]
    assert aggregation["per_series_aligner"] == "ALIGN_PERCENTILE_95"
    metric = tf.resource("google_logging_metric.latency")
    assert metric["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    assert "httpRequest.latency" in metric["value_extractor"]
