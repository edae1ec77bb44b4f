# BigQuery calls the predict function as a remote function (estate/serving/remote.py):
# a CLOUD_RESOURCE connection whose own service account may invoke predict, a dataset,
# and the function `<dataset>.predict_price(row JSON) RETURNS JSON`. Off by default;
# infra/bigquery/remote_predict.sql is the same thing in SQL, for projects that manage
# BigQuery outside Terraform.

variable "enable_bigquery_remote_function" {
  description = "Create the BigQuery connection, dataset and remote function that call predict."
  type        = bool
  default     = false
}

variable "bigquery_location" {
  description = "BigQuery location of the connection and dataset (the tables you score must live there)."
  type        = string
  default     = "US"
}

variable "bigquery_dataset" {
  description = "Dataset that holds the remote function predict_price (created by Terraform)."
  type        = string
  default     = "estate"
}

variable "remote_max_batching_rows" {
  description = "Rows per request BigQuery sends to predict; at most ESTATE_MAX_INSTANCES (5000)."
  type        = number
  default     = 1000

  validation {
    condition     = var.remote_max_batching_rows >= 1 && var.remote_max_batching_rows <= 5000
    error_message = "remote_max_batching_rows must be 1..5000: predict refuses larger batches (ESTATE_MAX_INSTANCES)."
  }
}

variable "remote_model_version" {
  description = "Model version the remote function pins (userDefinedContext); empty: follow the serving pointer."
  type        = string
  default     = ""
}

locals {
  bigquery = var.enable_bigquery_remote_function ? toset(["predict"]) : toset([])
}

resource "google_bigquery_connection" "predict" {
  for_each = local.bigquery

  connection_id = "${var.name_prefix}-predict"
  location      = var.bigquery_location
  friendly_name = "${var.name_prefix} predict"
  description   = "BigQuery remote function calls to the estate-advisor predict function"
  cloud_resource {}

  depends_on = [google_project_service.apis]
}

# The connection's own service account (created by BigQuery) calls predict with an
# identity token: it needs run.invoker on predict's Cloud Run service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "bigquery_invokes_predict" {
  for_each = local.bigquery

  location = var.region
  name     = google_cloudfunctions2_function.http["predict"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_bigquery_connection.predict[each.key].cloud_resource[0].service_account_id}"
}

resource "google_bigquery_dataset" "estate" {
  #checkov:skip=CKV_GCP_81:The dataset holds only the remote function (no table data); Google-managed encryption is enough for a routine.
  for_each = local.bigquery

  dataset_id  = var.bigquery_dataset
  location    = var.bigquery_location
  description = "estate-advisor: the predict_price remote function"

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_routine" "predict_price" {
  for_each = local.bigquery

  dataset_id      = google_bigquery_dataset.estate[each.key].dataset_id
  routine_id      = "predict_price"
  routine_type    = "SCALAR_FUNCTION"
  definition_body = ""
  description     = "price, interval and warnings for one row (TO_JSON(t)); an invalid row answers {error}"

  arguments {
    name      = "row"
    data_type = jsonencode({ typeKind = "JSON" })
  }
  return_type = jsonencode({ typeKind = "JSON" })

  remote_function_options {
    endpoint             = google_cloudfunctions2_function.http["predict"].url
    connection           = google_bigquery_connection.predict[each.key].name
    max_batching_rows    = tostring(var.remote_max_batching_rows)
    user_defined_context = var.remote_model_version == "" ? {} : { model_version = var.remote_model_version }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.bigquery_invokes_predict]
}

output "bigquery_remote_function" {
  description = "The remote function to call in SQL (dataset.predict_price), when enabled."
  value       = { for k, r in google_bigquery_routine.predict_price : k => "${var.project_id}.${r.dataset_id}.${r.routine_id}" }
}
