output "function_urls" {
  description = "HTTPS URL of each HTTP function (call with an identity token unless listed in public_functions)."
  value       = { for name, fn in google_cloudfunctions2_function.http : name => fn.url }
}

output "artifacts_uri" {
  description = "ESTATE_ARTIFACTS of the functions and --store of the estate commands: where bundles live."
  value       = local.artifacts_uri
}

output "buckets" {
  description = "Bucket names: data (uploads start a retrain), artifacts, source, logs."
  value = {
    data      = google_storage_bucket.data.name
    artifacts = google_storage_bucket.artifacts.name
    source    = google_storage_bucket.source.name
    logs      = google_storage_bucket.logs.name
  }
}

output "service_accounts" {
  description = "E-mail of each role's service account (trainer for `estate submit --service-account`, deployer for Cloud Build)."
  value       = { for role, sa in google_service_account.sa : role => sa.email }
}

output "llm_secret" {
  description = "Secret Manager secret to add the LLM API key to (then set enable_llm = true)."
  value       = google_secret_manager_secret.llm_api_key.secret_id
}

output "cloudbuild_substitutions" {
  description = "Pass to `gcloud builds submit --config cloudbuild.yaml --substitutions=...`."
  value = join(",", [
    "_REGION=${var.region}",
    "_NAME_PREFIX=${var.name_prefix}",
    "_ARTIFACTS=${local.artifacts_uri}",
    "_MODEL_NAME=${var.model_name}",
    "_DATA_BUCKET=${google_storage_bucket.data.name}",
  ])
}

output "gateway_url" {
  description = "API Gateway hostname for partners (null unless enable_api_gateway)."
  value       = var.enable_api_gateway ? "https://${google_api_gateway_gateway.api[0].default_hostname}" : null
}

output "partner_api_keys" {
  description = "Partner API key strings, by name (sensitive: `terraform output -json partner_api_keys`)."
  value       = { for name, key in google_apikeys_key.partner : name => key.key_string }
  sensitive   = true
}

output "training_image" {
  description = "The training image Vertex AI jobs run (Cloud Build pushes :latest and :<build id>)."
  value       = local.training_image
}

output "scheduled_job_commands" {
  description = "The `estate submit` commands that write the scheduled jobs' bodies (retrain_job_file, monitor_job_file); run them from the repository root."
  value = {
    retrain = join(" ", [
      "estate submit --job train --project ${var.project_id} --region ${var.region}",
      "--config ${var.retrain_config} --data gs://${google_storage_bucket.data.name}/ames.csv.gz",
      "--store ${local.artifacts_uri} --staging ${local.artifacts_uri} --image ${local.training_image}",
      "--service-account ${google_service_account.sa["trainer"].email} --label trigger=schedule",
      "--run-id scheduled-retrain --write-json infra/jobs/retrain.json",
    ])
    monitor = join(" ", [
      "estate submit --job monitor --project ${var.project_id} --region ${var.region}",
      "--logs gs://${google_storage_bucket.logs.name}/run.googleapis.com/stdout/ --model ${var.model_name}",
      "--store ${local.artifacts_uri} --staging ${local.artifacts_uri} --image ${local.training_image}",
      "--service-account ${google_service_account.sa["trainer"].email} --label trigger=schedule",
      "--run-id scheduled-monitor --write-json infra/jobs/monitor.json",
    ])
  }
}

output "web_api_key" {
  description = "The web page's browser-restricted API key for config.js (null without enable_api_gateway and web_origins; sensitive)."
  value       = length(google_apikeys_key.web) > 0 ? google_apikeys_key.web[0].key_string : null
  sensitive   = true
}
