# One service account per role. Each gets only the grants in iam.tf: bucket-, secret-,
# service- or account-level wherever Google Cloud has such a level.
locals {
  service_accounts = {
    trainer   = "Vertex AI training and monitor jobs: reads data, writes bundles"
    predict   = "predict function: reads bundles"
    explain   = "explain function: reads bundles"
    chat      = "chat function: reads bundles and the LLM key"
    analyze   = "analyze function: reads bundles"
    retrain   = "retrain function and its Eventarc trigger: submits training jobs"
    scheduler = "Cloud Scheduler: submits the scheduled retrain and monitor jobs"
    builder   = "Cloud Functions image builds: reads source, pushes images"
    deployer  = "Cloud Build pipeline (cloudbuild.yaml): tests, trains, deploys, smoke-tests"
    gateway   = "API Gateway backend: calls the HTTP functions for partners"
    dataflow  = "Dataflow workers of estate beam-score: read bundles and data, write scores"
  }
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}
