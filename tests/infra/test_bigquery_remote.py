"""Offline checks of the BigQuery remote function (infra/bigquery.tf and its SQL twin)."""

from __future__ import annotations

import re

import pytest
from terraform_config import INFRA, Terraform, load_terraform

from estate.serving.remote import VERSION_KEY
from estate.serving.settings import ServingSettings

SQL = INFRA / "bigquery" / "remote_predict.sql"


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def test_the_connection_is_a_cloud_resource_whose_account_may_invoke_predict_only(
    tf: Terraform,
) -> None:
    connection = tf.resource("google_bigquery_connection.predict")
    assert "cloud_resource" in connection
    grant = tf.resource("google_cloud_run_v2_service_iam_member.bigquery_invokes_predict")
    assert grant["role"] == "roles/run.invoker"
    assert 'http["predict"].service_config[0].service' in grant["name"]
    assert grant["member"] == (
        "serviceAccount:${google_bigquery_connection.predict[each.key]"
        ".cloud_resource[0].service_account_id}"
    )
    # No other grant names the connection: it reaches predict and nothing else.
    holders = [
        address
        for address, body in tf.resources.items()
        if "google_bigquery_connection" in str(body) and "iam_member" in address
    ]
    assert holders == ["google_cloud_run_v2_service_iam_member.bigquery_invokes_predict"]


def test_the_routine_calls_predicts_url_through_the_connection(tf: Terraform) -> None:
    (routine,) = tf.resource("google_bigquery_routine.predict_price")["remote_function_options"]
    assert routine["endpoint"] == '${google_cloudfunctions2_function.http["predict"].url}'
    assert routine["connection"] == "${google_bigquery_connection.predict[each.key].name}"
    assert routine["max_batching_rows"] == "${tostring(var.remote_max_batching_rows)}"
    assert VERSION_KEY in routine["user_defined_context"]
    body = tf.resource("google_bigquery_routine.predict_price")
    assert '"JSON"' in body["return_type"]
    assert '"JSON"' in body["arguments"][0]["data_type"]


def test_batches_stay_within_what_predict_accepts(tf: Terraform) -> None:
    variable = tf.variables["remote_max_batching_rows"]
    limit = ServingSettings().max_instances
    assert variable["default"] <= limit
    (rule,) = variable["validation"]
    assert f"<= {limit}" in rule["condition"]
    rows = re.search(r"max_batching_rows\s*=\s*(\d+)", SQL.read_text())
    assert rows
    assert int(rows.group(1)) <= limit


def test_the_remote_function_is_off_by_default_and_its_apis_are_enabled(tf: Terraform) -> None:
    assert tf.variables["enable_bigquery_remote_function"]["default"] is False
    for address in (
        "google_bigquery_connection.predict",
        "google_bigquery_dataset.estate",
        "google_bigquery_routine.predict_price",
        "google_cloud_run_v2_service_iam_member.bigquery_invokes_predict",
    ):
        assert tf.resource(address)["for_each"] == "${local.bigquery}"
    apis = tf.locals["apis"]
    assert "bigqueryconnection.googleapis.com" in apis
    assert "bigquery.googleapis.com" in apis


def test_the_sql_creates_a_one_json_argument_remote_function() -> None:
    text = SQL.read_text()
    statement = re.search(
        r"CREATE OR REPLACE FUNCTION `[^`]+`\(row JSON\)\s+RETURNS JSON\s+"
        r"REMOTE WITH CONNECTION `[^`]+`\s+OPTIONS \((.*?)\);",
        text,
        re.S,
    )
    assert statement, "the SQL should hold the CREATE FUNCTION ... REMOTE statement"
    options = statement.group(1)
    assert "endpoint = 'https://" in options
    assert VERSION_KEY in options  # how to pin a version, shown next to the options
    assert "TO_JSON(t)" in text


def test_dataflow_workers_read_bundles_and_use_only_the_data_bucket(tf: Terraform) -> None:
    assert "dataflow" in tf.locals["service_accounts"]
    grants = tf.resource("google_storage_bucket_iam_member.dataflow")
    assert grants["member"] == '${local.sa["dataflow"]}'
    by_bucket = {g["bucket"]: g["role"] for g in grants["for_each"].values()}
    assert by_bucket == {
        "${google_storage_bucket.artifacts.name}": "roles/storage.objectViewer",
        "${google_storage_bucket.data.name}": "roles/storage.objectUser",
    }
    worker = tf.resource("google_project_iam_member.dataflow_worker")
    assert worker["role"] == "roles/dataflow.worker"
    options = tf.outputs["dataflow_options"]["value"]
    for flag in ("--temp_location", "--staging_location", "--service_account_email"):
        assert flag in options
    assert "dataflow.googleapis.com" in tf.locals["apis"]
