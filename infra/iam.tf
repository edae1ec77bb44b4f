# Least privilege, role by role. Project-level grants appear only where Google Cloud has
# no narrower level (Vertex AI job creation, Eventarc event receipt, Cloud Functions
# deployment, log writing); each says why.

locals {
  sa = { for k, v in google_service_account.sa : k => v.member }

  # Who reads what, per bucket.
  bucket_grants = {
    artifacts_read_predict = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectViewer", member = local.sa["predict"] }
    artifacts_read_explain = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectViewer", member = local.sa["explain"] }
    artifacts_read_chat    = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectViewer", member = local.sa["chat"] }
    artifacts_read_analyze = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectViewer", member = local.sa["analyze"] }
    # Training writes bundles and moves the serving pointer (promote / rollback).
    artifacts_write_trainer = { bucket = google_storage_bucket.artifacts.name, role = "roles/storage.objectUser", member = local.sa["trainer"] }
    data_read_trainer       = { bucket = google_storage_bucket.data.name, role = "roles/storage.objectViewer", member = local.sa["trainer"] }
    logs_read_trainer       = { bucket = google_storage_bucket.logs.name, role = "roles/storage.objectViewer", member = local.sa["trainer"] }
    source_read_builder     = { bucket = google_storage_bucket.source.name, role = "roles/storage.objectViewer", member = local.sa["builder"] }
    # The log sink's own identity appends prediction logs.
    logs_write_sink = { bucket = google_storage_bucket.logs.name, role = "roles/storage.objectCreator", member = google_logging_project_sink.predictions.writer_identity }
  }
}

resource "google_storage_bucket_iam_member" "grants" {
  for_each = local.bucket_grants

  bucket = each.value.bucket
  role   = each.value.role
  member = each.value.member
}

# The LLM key: readable by chat only.
resource "google_secret_manager_secret_iam_member" "chat_reads_llm_key" {
  secret_id = google_secret_manager_secret.llm_api_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa["chat"]
}

# Whoever submits Vertex AI jobs may run them as the trainer, and only as the trainer.
resource "google_service_account_iam_member" "act_as_trainer" {
  for_each = toset(["retrain", "scheduler", "deployer"])

  service_account_id = google_service_account.sa["trainer"].name
  role               = "roles/iam.serviceAccountUser"
  member             = local.sa[each.value]
}

# The pipeline deploys each function as its own identity, built by the builder.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = toset(["predict", "explain", "chat", "analyze", "retrain", "builder"])

  service_account_id = google_service_account.sa[each.value].name
  role               = "roles/iam.serviceAccountUser"
  member             = local.sa["deployer"]
}

# Project-level grants that have no narrower scope.
locals {
  project_grants = {
    # Vertex AI custom jobs cannot be authorised per job: creating one is project-wide.
    retrain_vertex   = { role = "roles/aiplatform.user", member = local.sa["retrain"] }
    scheduler_vertex = { role = "roles/aiplatform.user", member = local.sa["scheduler"] }
    deployer_vertex  = { role = "roles/aiplatform.user", member = local.sa["deployer"] }
    # Eventarc delivers events to a trigger's identity only with this project role.
    retrain_events = { role = "roles/eventarc.eventReceiver", member = local.sa["retrain"] }
    # Cloud Storage publishes object events through Pub/Sub as its service agent.
    gcs_publishes = { role = "roles/pubsub.publisher", member = data.google_storage_project_service_account.gcs.member }
    # Deploying functions (the pipeline) has no per-function role before they exist.
    deployer_functions = { role = "roles/cloudfunctions.developer", member = local.sa["deployer"] }
    # Build and job logs.
    builder_logs  = { role = "roles/logging.logWriter", member = local.sa["builder"] }
    deployer_logs = { role = "roles/logging.logWriter", member = local.sa["deployer"] }
    trainer_logs  = { role = "roles/logging.logWriter", member = local.sa["trainer"] }
  }
}

resource "google_project_iam_member" "grants" {
  for_each = local.project_grants

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

# gcloud uploads sources to Google-managed buckets (gcf-v2-sources-*, <project>_cloudbuild)
# that Terraform does not own: read access is limited to those buckets by a condition.
resource "google_project_iam_member" "read_managed_sources" {
  for_each = toset(["builder", "deployer"])

  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = local.sa[each.value]

  condition {
    title       = "managed-source-buckets"
    description = "Only the buckets gcloud uploads function and build sources to."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-\") || resource.name.startsWith(\"projects/_/buckets/${var.project_id}_cloudbuild\")"
  }
}

# Images of the functions: the builder pushes to this repository only.
resource "google_artifact_registry_repository_iam_member" "builder_pushes" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = local.sa["builder"]
}

# Who may call which function (Cloud Run invoker on each gen2 function's service).
locals {
  invoker_pairs = merge(
    # The pipeline smoke-tests every HTTP function after deploying it.
    { for f in local.http_function_names : "${f}/deployer" => { function = f, member = local.sa["deployer"] } },
    # API Gateway forwards partner calls with its own identity.
    var.enable_api_gateway ? { for f in local.http_function_names : "${f}/gateway" => { function = f, member = local.sa["gateway"] } } : {},
    # People and services named in var.invokers.
    { for pair in setproduct(local.http_function_names, var.invokers) : "${pair[0]}/${pair[1]}" => { function = pair[0], member = pair[1] } },
  )
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = local.invoker_pairs

  location = var.region
  name     = google_cloudfunctions2_function.http[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value.member
}

# Anonymous access only for the functions listed in var.public_functions (none by default).
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = toset(var.public_functions)

  location = var.region
  name     = google_cloudfunctions2_function.http[each.value].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Eventarc calls the retrain function as the retrain identity.
resource "google_cloud_run_v2_service_iam_member" "retrain_trigger" {
  location = var.region
  name     = google_cloudfunctions2_function.retrain.service_config[0].service
  role     = "roles/run.invoker"
  member   = local.sa["retrain"]
}
