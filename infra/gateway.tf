# Optional: API Gateway in front of predict/explain/chat/analyze, with API keys for partners.
# Off by default (enable_api_gateway = false). The Swagger 2.0 document at
# var.openapi_path is generated from the functions' pydantic models; its backends are
# filled in here from the deployed function URLs (${predict_url}, ${explain_url},
# ${chat_url}, ${analyze_url} in the document).

locals {
  gateway_count = var.enable_api_gateway ? 1 : 0
}

resource "google_api_gateway_api" "api" {
  provider = google-beta
  count    = local.gateway_count

  api_id       = "${var.name_prefix}-api"
  display_name = "${var.name_prefix} valuation API"

  depends_on = [google_project_service.apis]
}

resource "google_api_gateway_api_config" "api" {
  provider = google-beta
  count    = local.gateway_count

  api                  = google_api_gateway_api.api[0].api_id
  api_config_id_prefix = "${var.name_prefix}-"
  display_name         = "${var.name_prefix} API config"

  openapi_documents {
    document {
      path = basename(var.openapi_path)
      contents = base64encode(templatefile("${path.module}/${var.openapi_path}", {
        predict_url     = google_cloudfunctions2_function.http["predict"].url
        explain_url     = google_cloudfunctions2_function.http["explain"].url
        chat_url        = google_cloudfunctions2_function.http["chat"].url
        analyze_url     = google_cloudfunctions2_function.http["analyze"].url
        predict_quota   = var.gateway_quotas["predict"]
        explain_quota   = var.gateway_quotas["explain"]
        chat_quota      = var.gateway_quotas["chat"]
        analyze_quota   = var.gateway_quotas["analyze"]
        managed_service = google_api_gateway_api.api[0].managed_service
      }))
    }
  }

  gateway_config {
    backend_config {
      google_service_account = google_service_account.sa["gateway"].email
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "api" {
  provider = google-beta
  count    = local.gateway_count

  region       = var.region
  gateway_id   = "${var.name_prefix}-gateway"
  api_config   = google_api_gateway_api_config.api[0].id
  display_name = "${var.name_prefix} gateway"

  lifecycle {
    # Behind the gateway the functions are invoked by its identity only: a public
    # function would let anyone skip the keys and the quotas.
    precondition {
      condition     = length(var.public_functions) == 0
      error_message = "enable_api_gateway publishes the functions through the gateway: leave public_functions empty (the web page calls the gateway with the web API key)."
    }
  }
}

# API keys check against the API's managed service, which must be enabled in the project.
resource "google_project_service" "gateway_api" {
  count = local.gateway_count

  project            = var.project_id
  service            = google_api_gateway_api.api[0].managed_service
  disable_on_destroy = false
}

resource "google_apikeys_key" "partner" {
  for_each = var.enable_api_gateway ? toset(var.partner_api_keys) : toset([])

  name         = "${var.name_prefix}-${each.value}"
  display_name = "${var.name_prefix} partner key: ${each.value}"
  project      = var.project_id

  restrictions {
    api_targets {
      service = google_api_gateway_api.api[0].managed_service
    }
  }

  depends_on = [google_project_service.gateway_api]
}

# The web page's key: it ships in the page (config.js), so it is only as secret as a
# Maps key. Browsers send it only from var.web_origins (HTTP referrer restriction), it
# reaches this API only, and the gateway's quotas bound what a copied key can do.
resource "google_apikeys_key" "web" {
  count = var.enable_api_gateway && length(var.web_origins) > 0 ? 1 : 0

  name         = "${var.name_prefix}-web"
  display_name = "${var.name_prefix} web page key"
  project      = var.project_id

  restrictions {
    browser_key_restrictions {
      allowed_referrers = [for origin in var.web_origins : "${trimsuffix(origin, "/")}/*"]
    }
    api_targets {
      service = google_api_gateway_api.api[0].managed_service
    }
  }

  depends_on = [google_project_service.gateway_api]
}
