# The Cloud Functions (gen2), all built from the one source archive (main.py at its root).
# Entry points are the names main.py exports; each function runs as its own identity.

locals {
  http_function_names = toset(["predict", "explain", "chat", "analyze"])

  # Variables every function gets (each function reads its own settings class from the
  # ESTATE_* environment, estate/serving/settings.py; these are predict's and explain's);
  # var.functions[*].env adds or overrides per function.
  serving_env = {
    ESTATE_ARTIFACTS   = local.artifacts_uri
    ESTATE_MODEL_NAME  = var.model_name
    ESTATE_LOG_PROJECT = var.project_id # prediction logs link to Cloud Trace
    # glibc: request threads share 2 malloc arenas, so one batch's freed memory serves
    # the next (8 concurrent worst-case batches: +270 MB instead of +345 MB, bench/README.md)
    MALLOC_ARENA_MAX = "2"
  }

  # chat with an LLM: where to reach it (the key itself comes from Secret Manager below).
  llm_env = var.enable_llm ? {
    ESTATE_LLM_BASE_URL = var.llm_base_url
    ESTATE_LLM_MODEL    = var.llm_model
  } : {}

  # What the retrain function needs to submit `estate train` on Vertex AI as the trainer
  # (estate/serving/retrain.py refuses to submit without project, staging and image). Cloud
  # Build pins ESTATE_RETRAIN_IMAGE to its own build's tag when it redeploys retrain.
  retrain_env = {
    ESTATE_RETRAIN_PROJECT         = var.project_id
    ESTATE_RETRAIN_REGION          = var.region
    ESTATE_RETRAIN_PREFIX          = var.retrain_prefix
    ESTATE_RETRAIN_CONFIG          = var.retrain_config
    ESTATE_RETRAIN_OUTPUT          = local.artifacts_uri
    ESTATE_RETRAIN_STAGING         = local.artifacts_uri # jobs write under <staging>/jobs/<run>/
    ESTATE_RETRAIN_SERVICE_ACCOUNT = google_service_account.sa["trainer"].email
    ESTATE_RETRAIN_MACHINE_TYPE    = var.training_machine_type
    ESTATE_RETRAIN_IMAGE           = local.training_image # training.tf
  }
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Images hold only this repository's open-source code; Google-managed encryption is enough.
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Container images built for the ${var.name_prefix} Cloud Functions."
  format        = "DOCKER"

  # Old images go after 30 days, except each function's 10 newest (the serving
  # revision's image among them: new instances pull it).
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "http" {
  #checkov:skip=CKV_GCP_124:An HTTPS API must be reachable from the internet; every call still needs an IAM identity token (allUsers only via var.public_functions) or an API Gateway key.
  for_each = local.http_function_names

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = "estate-advisor ${each.key} (HTTP)"

  build_config {
    runtime           = "python311"
    entry_point       = each.key
    service_account   = google_service_account.sa["builder"].id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sa[each.key].email
    available_memory                 = var.functions[each.key].memory
    available_cpu                    = var.functions[each.key].cpu
    min_instance_count               = var.functions[each.key].min_instances
    max_instance_count               = var.functions[each.key].max_instances
    max_instance_request_concurrency = var.functions[each.key].concurrency
    timeout_seconds                  = var.functions[each.key].timeout_seconds
    ingress_settings                 = "ALLOW_ALL" # callers still need a token unless public_functions names the function
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(local.serving_env, each.key == "chat" ? local.llm_env : {}, var.functions[each.key].env)

    # The LLM key reaches chat, and only chat, as an environment variable resolved by
    # Cloud Run from Secret Manager at instance start (never in Terraform state).
    dynamic "secret_environment_variables" {
      for_each = each.key == "chat" && var.enable_llm ? [google_secret_manager_secret.llm_api_key.secret_id] : []
      content {
        key        = var.llm_api_key_env
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  # Terraform deploys the first version; after that cloudbuild.yaml deploys the code
  # (gcloud functions deploy), so a later `terraform apply` must not roll it back.
  lifecycle {
    ignore_changes = [build_config[0].source]
  }

  depends_on = [
    google_storage_bucket_iam_member.grants,
    google_secret_manager_secret_iam_member.chat_reads_llm_key,
    google_artifact_registry_repository_iam_member.builder_pushes,
    google_project_iam_member.grants,
  ]
}

# A new object in the data bucket starts a training job (the retrain function submits a
# Vertex AI custom job running as the trainer).
resource "google_cloudfunctions2_function" "retrain" {
  name        = "${var.name_prefix}-retrain"
  location    = var.region
  description = "estate-advisor retrain: data upload -> Vertex AI training job"

  build_config {
    runtime           = "python311"
    entry_point       = "retrain"
    service_account   = google_service_account.sa["builder"].id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sa["retrain"].email
    available_memory                 = var.functions["retrain"].memory
    available_cpu                    = var.functions["retrain"].cpu
    min_instance_count               = var.functions["retrain"].min_instances
    max_instance_count               = var.functions["retrain"].max_instances
    max_instance_request_concurrency = var.functions["retrain"].concurrency
    timeout_seconds                  = var.functions["retrain"].timeout_seconds
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(local.serving_env, local.retrain_env, var.functions["retrain"].env)
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_DO_NOT_RETRY" # a failed submission is logged and alerted, not repeated in a loop
    service_account_email = google_service_account.sa["retrain"].email
    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.data.name
    }
  }

  # Terraform deploys the first version; after that cloudbuild.yaml deploys the code
  # (gcloud functions deploy), so a later `terraform apply` must not roll it back.
  lifecycle {
    ignore_changes = [build_config[0].source]
  }

  depends_on = [
    google_project_iam_member.grants,
    google_service_account_iam_member.act_as_trainer,
    google_artifact_registry_repository_iam_member.builder_pushes,
  ]
}
