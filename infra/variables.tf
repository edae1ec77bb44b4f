# Every input of the deployment. Copy terraform.tfvars.example to terraform.tfvars and
# set at least project_id.

variable "project_id" {
  description = "Google Cloud project to deploy into (it must exist and have billing enabled)."
  type        = string
}

variable "region" {
  description = "Region for the functions, buckets, Vertex AI jobs, Scheduler and API Gateway."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions become <prefix>-predict, ...). Lowercase letters, digits and dashes."
  type        = string
  default     = "estate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: a lowercase letter, then lowercase letters, digits or dashes."
  }
}

variable "model_name" {
  description = "Model the functions serve (ESTATE_MODEL_NAME): models/<name>/ in the artifact bucket."
  type        = string
  default     = "ames"
}

variable "artifacts_prefix" {
  description = "Folder inside the artifact bucket that holds models/ (empty: the bucket root). ESTATE_ARTIFACTS becomes gs://<bucket>[/<prefix>]."
  type        = string
  default     = "estate"
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets (models and data included). Keep false outside throwaway projects."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Delete overwritten or deleted objects (old pointer files, replaced data) this many days after they stop being current; null keeps them forever. Bundles themselves are never overwritten."
  type        = number
  default     = 90
}

variable "job_output_days" {
  description = "Delete Vertex AI job outputs (<artifacts_uri>/jobs/) this many days after they were written; null keeps them. Model bundles are never expired by age."
  type        = number
  default     = 30
}

variable "prediction_log_days" {
  description = "Days to keep the prediction logs exported to the logs bucket (read by the scheduled monitor run)."
  type        = number
  default     = 30
}

variable "functions" {
  description = "Sizing of each function (keys: predict, explain, chat, analyze, retrain). memory is a Cloud Run quantity (512Mi, 1Gi), cpu a count (\"1\"), concurrency the requests one instance serves at once."
  type = map(object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 10)
    concurrency     = optional(number, 8)
    timeout_seconds = optional(number, 60)
    env             = optional(map(string), {})
  }))
  default = {
    predict = {}
    explain = {}
    chat    = { timeout_seconds = 120 }
    analyze = {}
    retrain = { memory = "256Mi", max_instances = 2, concurrency = 1, timeout_seconds = 300 }
  }

  validation {
    condition     = length(setsubtract(keys(var.functions), ["predict", "explain", "chat", "analyze", "retrain"])) == 0 && length(var.functions) == 5
    error_message = "functions must have exactly the keys predict, explain, chat, analyze and retrain."
  }
}

variable "invokers" {
  description = "IAM members allowed to call the HTTP functions directly (e.g. [\"user:you@example.com\", \"group:partners@example.com\"])."
  type        = list(string)
  default     = []
}

variable "public_functions" {
  description = "HTTP functions anyone on the internet may call without a token (adds allUsers as invoker). Empty by default: every call needs an identity token or goes through the API Gateway."
  type        = list(string)
  default     = []

  validation {
    condition     = length(setsubtract(var.public_functions, ["predict", "explain", "chat", "analyze"])) == 0
    error_message = "public_functions may only name predict, explain, chat or analyze."
  }
}

variable "enable_llm" {
  description = "Give `chat` the LLM API key from Secret Manager (add a secret version first: see infra/README.md). False: chat uses its offline local engine."
  type        = bool
  default     = false
}

variable "llm_api_key_env" {
  description = "Environment variable through which `chat` receives the LLM API key from Secret Manager."
  type        = string
  default     = "ESTATE_LLM_API_KEY"
}

variable "llm_base_url" {
  description = "OpenAI-compatible chat-completions base URL chat calls when enable_llm (Groq by default)."
  type        = string
  default     = "https://api.groq.com/openai/v1"
}

variable "llm_model" {
  description = "Chat-completions model name chat asks for when enable_llm."
  type        = string
  default     = "llama-3.3-70b-versatile"
}

variable "retrain_prefix" {
  description = "Only data files uploaded under this folder of the data bucket start a retrain (ESTATE_RETRAIN_PREFIX)."
  type        = string
  default     = "incoming/"
}

variable "retrain_config" {
  description = "Data-set config the retrain job trains with, as a path inside the training image."
  type        = string
  default     = "configs/ames.toml"
}

variable "training_image" {
  description = "Training image the retrain function's Vertex AI jobs run (entry point: estate). null: the one Cloud Build pushes, <region>-docker.pkg.dev/<project>/<name_prefix>-training/trainer:latest."
  type        = string
  default     = null
}

variable "training_machine_type" {
  description = "Machine type of the Vertex AI training jobs the retrain function submits."
  type        = string
  default     = "n1-standard-4"
}

variable "retrain_job_file" {
  description = "Vertex AI CustomJob JSON written by `estate submit --write-json` (path relative to infra/). Set it to create the scheduled retrain; null: no scheduled retrain."
  type        = string
  default     = null
}

variable "retrain_schedule" {
  description = "Cron schedule of the retrain (Cloud Scheduler syntax, in time_zone)."
  type        = string
  default     = "0 3 * * 1"
}

variable "monitor_job_file" {
  description = "Vertex AI CustomJob JSON that runs `estate monitor` (written by `estate submit --write-json`). Set it to create the scheduled drift check; null: none."
  type        = string
  default     = null
}

variable "monitor_schedule" {
  description = "Cron schedule of the drift monitor run (Cloud Scheduler syntax, in time_zone)."
  type        = string
  default     = "0 6 * * *"
}

variable "time_zone" {
  description = "Time zone of the schedules (tz database name)."
  type        = string
  default     = "Etc/UTC"
}

variable "alert_email" {
  description = "E-mail address that receives the error-rate and latency alerts; null: alerts show in the console only."
  type        = string
  default     = null
}

variable "error_rate_threshold" {
  description = "Alert when more than this fraction of a function's requests answer 5xx over 5 minutes."
  type        = number
  default     = 0.02
}

variable "latency_p95_threshold_ms" {
  description = "Alert when a function's 95th-percentile request latency exceeds this many milliseconds over 5 minutes."
  type        = number
  default     = 1000
}

variable "enable_api_gateway" {
  description = "Publish predict/explain/chat/analyze through API Gateway with API keys for partners (google-beta)."
  type        = bool
  default     = false
}

variable "openapi_path" {
  description = "Swagger 2.0 document for API Gateway (generated into infra/ by the OpenAPI export). It may use $${predict_url}, $${explain_url}, $${chat_url} and $${analyze_url}, filled with the function URLs."
  type        = string
  default     = "openapi.yaml"
}

variable "partner_api_keys" {
  description = "Names of the API keys to create for partners (only with enable_api_gateway); each key may call this API only."
  type        = list(string)
  default     = []
}

variable "gateway_quotas" {
  description = "API Gateway requests per minute per consumer project (the project an API key belongs to), per function. Keys created here share this project's allowance; see infra/README.md for one allowance per partner."
  type        = map(number)
  default     = { predict = 600, explain = 60, chat = 30, analyze = 120 }
  validation {
    condition     = sort(keys(var.gateway_quotas)) == ["analyze", "chat", "explain", "predict"] && alltrue([for v in values(var.gateway_quotas) : v >= 1 && floor(v) == v])
    error_message = "gateway_quotas needs a whole number >= 1 for each of predict, explain, chat and analyze."
  }
}

variable "web_origins" {
  description = "Origins the web page is served from (e.g. [\"https://estate.example.com\"]); with enable_api_gateway, creates a browser key restricted to them. Also list them in the functions' ESTATE_CORS_ORIGINS."
  type        = list(string)
  default     = []
}

variable "prediction_log_filter" {
  description = "Cloud Logging filter that picks the functions' one-line-per-prediction logs out of their other logs (exported to the logs bucket for `estate monitor`)."
  type        = string
  default     = "jsonPayload.event=\"prediction\""
}
