# Buckets, one per kind of data so that each identity can be given exactly one:
#   data      - training data lands here; a new object starts a retrain
#   artifacts - model bundles and serving pointers (models/<name>/...)
#   source    - the functions' source archive
#   logs      - prediction logs exported from Cloud Logging, read by `estate monitor`
# All: uniform bucket-level access, public access prevention enforced, versioning.

locals {
  bucket_base   = "${var.project_id}-${var.name_prefix}"
  artifacts_uri = var.artifacts_prefix == "" ? "gs://${google_storage_bucket.artifacts.name}" : "gs://${google_storage_bucket.artifacts.name}/${var.artifacts_prefix}"
}

resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs need one more bucket; turn on Data Access audit logs for storage.googleapis.com if object reads must be recorded.
  name                        = "${local.bucket_base}-artifacts"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # Bundles are write-once; what gets overwritten is serving.json. Old generations of
  # it (rollback history is in the registry, not in generations) expire.
  dynamic "lifecycle_rule" {
    for_each = var.noncurrent_version_days == null ? [] : [var.noncurrent_version_days]
    content {
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
      action {
        type = "Delete"
      }
    }
  }

  # Vertex AI job outputs (<artifacts_uri>/jobs/<run>/) are logs and scratch: they
  # expire. Bundles are never deleted by age: only the registry knows which one serves.
  dynamic "lifecycle_rule" {
    for_each = var.job_output_days == null ? [] : [var.job_output_days]
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = [var.artifacts_prefix == "" ? "jobs/" : "${var.artifacts_prefix}/jobs/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs need one more bucket; turn on Data Access audit logs for storage.googleapis.com if object reads must be recorded.
  name                        = "${local.bucket_base}-data"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  dynamic "lifecycle_rule" {
    for_each = var.noncurrent_version_days == null ? [] : [var.noncurrent_version_days]
    content {
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs need one more bucket; turn on Data Access audit logs for storage.googleapis.com if object reads must be recorded.
  name                        = "${local.bucket_base}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # build inputs only: every archive is rebuilt from git

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "logs" {
  #checkov:skip=CKV_GCP_62:This bucket receives exported logs itself; logging its own access would recurse.
  name                        = "${local.bucket_base}-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.prediction_log_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# One source archive per function: main.py and the four layers the functions import
# (contract, storage, runtime, serving; the same allowlist as .gcloudignore), plus that
# function's own requirements/<function>.txt as the archive's requirements.txt, which
# Cloud Functions installs (predict and explain get no Vertex AI or Secret Manager).
locals {
  repo_root = "${path.module}/.."
  source_files = setunion(
    fileset(local.repo_root, "estate/{contract,storage,runtime,serving}/**/*.py"),
    toset(["main.py", "estate/__init__.py", "pyproject.toml", "README.md"]),
  )
  source_functions = setunion(local.http_function_names, toset(["retrain"]))
}

data "archive_file" "source" {
  for_each    = local.source_functions
  type        = "zip"
  output_path = "${path.module}/.terraform/${var.name_prefix}-${each.key}-source.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      content  = file("${local.repo_root}/${source.value}")
      filename = source.value
    }
  }
  source {
    content  = file("${local.repo_root}/requirements/${each.key}.txt")
    filename = "requirements.txt"
  }
}

resource "google_storage_bucket_object" "source" {
  # Named by content hash: a changed checkout uploads a new archive (used when a
  # function is created; later code changes are deployed by cloudbuild.yaml).
  for_each = local.source_functions
  name     = "functions/${var.name_prefix}-${each.key}-${data.archive_file.source[each.key].output_md5}.zip"
  bucket   = google_storage_bucket.source.name
  source   = data.archive_file.source[each.key].output_path
}
