# Provider versions. `terraform init` downloads them; nothing else in this folder needs
# the network (the tests parse these files and run checkov offline).
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14, < 8.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.14, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

# API Gateway and API keys for partners are beta resources (only used when
# enable_api_gateway = true).
provider "google-beta" {
  project = var.project_id
  region  = var.region
}
