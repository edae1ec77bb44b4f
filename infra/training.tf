# The training image: the repository's Dockerfile, built and pushed by cloudbuild.yaml
# (step `image`) as trainer:<build id> and trainer:latest. Vertex AI custom jobs run it —
# the retrain function's (ESTATE_RETRAIN_IMAGE), the scheduled ones (scheduler.tf) and
# `estate submit`'s, whose default --image is this same URI (estate/serving/jobs.py).
# Vertex AI pulls from an Artifact Registry repository of its own project with its
# service agent's default rights: no grant is needed for the jobs to start.

locals {
  training_image = var.training_image != null ? var.training_image : "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.training.repository_id}/trainer:latest"
}

resource "google_artifact_registry_repository" "training" {
  #checkov:skip=CKV_GCP_84:Images hold only this repository's open-source code; Google-managed encryption is enough.
  location      = var.region
  repository_id = "${var.name_prefix}-training"
  description   = "The ${var.name_prefix} training image that Vertex AI custom jobs run (Dockerfile)."
  format        = "DOCKER"

  # Old images go after 90 days, except the 10 newest (:latest, which the scheduled jobs
  # run, and the build-id tags recent retrain functions submit, among them).
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "7776000s"
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

# The pipeline (Cloud Build as the deployer) pushes the image, to this repository only.
resource "google_artifact_registry_repository_iam_member" "deployer_pushes_training_image" {
  location   = google_artifact_registry_repository.training.location
  repository = google_artifact_registry_repository.training.name
  role       = "roles/artifactregistry.writer"
  member     = local.sa["deployer"]
}
