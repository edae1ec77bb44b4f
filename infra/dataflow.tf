# `estate beam-score --runner DataflowRunner` (estate/batch/beam.py): the workers run as
# the dataflow service account. They read bundles (artifacts bucket, read-only) and
# read inputs / write predictions, temp and staging files in the data bucket; the
# Dataflow worker role has no level narrower than the project.

resource "google_storage_bucket_iam_member" "dataflow" {
  for_each = {
    artifacts_read = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectViewer" }
    data_use       = { bucket = google_storage_bucket.data.name, role = "roles/storage.objectUser" }
  }

  bucket = each.value.bucket
  role   = each.value.role
  member = local.sa["dataflow"]
}

resource "google_project_iam_member" "dataflow_worker" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = local.sa["dataflow"]
}

output "dataflow_options" {
  description = "Beam options for estate beam-score on Dataflow (after `--`): region, temp/staging, worker identity."
  value = join(" ", [
    "--runner DataflowRunner",
    "--project ${var.project_id}",
    "--region ${var.region}",
    "--temp_location gs://${google_storage_bucket.data.name}/dataflow/tmp",
    "--staging_location gs://${google_storage_bucket.data.name}/dataflow/staging",
    "--service_account_email ${google_service_account.sa["dataflow"].email}",
  ])
}
