# Observability: the functions' request logs become log-based metrics (requests, 5xx
# answers, latency distribution), watched by two alert policies; prediction log
# lines are exported to the logs bucket for the scheduled drift monitor.

locals {
  # Gen2 functions run as Cloud Run services named like the functions.
  function_requests = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=~\"^${var.name_prefix}-(predict|explain|chat|analyze)$\"",
    "log_name=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
  ])
}

resource "google_logging_metric" "requests" {
  name        = "${var.name_prefix}/requests"
  description = "Requests to the ${var.name_prefix} HTTP functions, by function."
  filter      = local.function_requests

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (= function) name"
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "server_errors" {
  name        = "${var.name_prefix}/server_errors"
  description = "Requests the ${var.name_prefix} HTTP functions answered with a 5xx, by function."
  filter      = "${local.function_requests} AND httpRequest.status>=500"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (= function) name"
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "latency" {
  name        = "${var.name_prefix}/latency"
  description = "Request latency of the ${var.name_prefix} HTTP functions, in seconds."
  filter      = local.function_requests

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (= function) name"
    }
  }

  value_extractor = "REGEXP_EXTRACT(httpRequest.latency, \"^([0-9.]+)s$\")"
  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 0.001
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  display_name = "${var.name_prefix} alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  display_name          = "${var.name_prefix}: 5xx rate above ${var.error_rate_threshold * 100}%"
  combiner              = "OR"
  notification_channels = google_monitoring_notification_channel.email[*].id

  conditions {
    display_name = "5xx / all requests, per function, over 5 minutes"
    condition_threshold {
      filter             = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.server_errors.name}\" AND resource.type=\"cloud_run_revision\""
      denominator_filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.requests.name}\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_rate_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx: the model or store may be unreachable (503) or a bug (500). Read the function's logs in Cloud Logging; `estate models` shows what should be serving."
  }
}

resource "google_monitoring_alert_policy" "latency_p95" {
  display_name          = "${var.name_prefix}: p95 latency above ${var.latency_p95_threshold_ms} ms"
  combiner              = "OR"
  notification_channels = google_monitoring_notification_channel.email[*].id

  conditions {
    display_name = "95th percentile request latency, per function, over 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.latency.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.latency_p95_threshold_ms / 1000
      duration        = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.function"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Slow answers: check cold starts (raise min_instances), batch sizes and concurrency in var.functions."
  }
}

# The one-line-per-prediction logs, exported hourly to the logs bucket, where the
# scheduled `estate monitor` job reads them.
resource "google_logging_project_sink" "predictions" {
  #checkov:skip=CKV2_GCP_4:Prediction logs are drift-monitoring input, not audit records; a locked retention policy would keep them (and the bucket) undeletable.
  name                   = "${var.name_prefix}-predictions"
  description            = "Prediction log lines of the ${var.name_prefix} functions, for drift monitoring."
  destination            = "storage.googleapis.com/${google_storage_bucket.logs.name}"
  filter                 = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-(predict|explain|chat)$\"  AND (${var.prediction_log_filter})"
  unique_writer_identity = true
}
