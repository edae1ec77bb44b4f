# Scheduled jobs: Cloud Scheduler POSTs a Vertex AI CustomJob (the JSON that
# `estate submit --write-json FILE` writes) straight to customJobs.create, with an OAuth
# token of the scheduler identity. No function sits in between. Both jobs run the
# training image (training.tf) at :latest, so each run uses the last pushed code.
# `terraform output scheduled_job_commands` prints both commands with this project's
# names filled in:
#
#   estate submit --job train --project P --region R --config configs/ames.toml \
#     --data gs://<data bucket>/ames.csv.gz --store <artifacts_uri> --staging <artifacts_uri> \
#     --service-account <trainer email> --run-id scheduled-retrain --write-json infra/jobs/retrain.json
#   estate submit --job monitor --project P --region R \
#     --logs gs://<logs bucket>/run.googleapis.com/stdout/ --model ames --store <artifacts_uri> \
#     --staging <artifacts_uri> --service-account <trainer email> --run-id scheduled-monitor \
#     --write-json infra/jobs/monitor.json

locals {
  custom_jobs_url = "https://${var.region}-aiplatform.googleapis.com/v1/projects/${var.project_id}/locations/${var.region}/customJobs"
  scheduled_jobs = merge(
    var.retrain_job_file == null ? {} : { retrain = { file = var.retrain_job_file, schedule = var.retrain_schedule } },
    var.monitor_job_file == null ? {} : { monitor = { file = var.monitor_job_file, schedule = var.monitor_schedule } },
  )
}

resource "google_cloud_scheduler_job" "vertex" {
  for_each = local.scheduled_jobs

  name             = "${var.name_prefix}-${each.key}"
  description      = "Starts the ${each.key} Vertex AI custom job (${each.value.file})."
  region           = var.region
  schedule         = each.value.schedule
  time_zone        = var.time_zone
  attempt_deadline = "60s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = local.custom_jobs_url
    body        = base64encode(file("${path.module}/${each.value.file}"))
    headers = {
      "Content-Type" = "application/json"
    }

    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_iam_member.grants, google_service_account_iam_member.act_as_trainer]
}
