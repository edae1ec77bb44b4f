# The LLM API key for chat. Terraform creates the empty secret; you add the key as a
# version yourself so it never lands in Terraform state:
#   printf %s "$KEY" | gcloud secrets versions add <prefix>-llm-api-key --data-file=-
resource "google_secret_manager_secret" "llm_api_key" {
  secret_id = "${var.name_prefix}-llm-api-key"

  replication {
    auto {}
  }

  labels = {
    app = var.name_prefix
  }

  depends_on = [google_project_service.apis]
}
