# Inputs of the module. A council sets the required ones (no default) in its root module: see
# infra/envs/example and docs/deploy.md. Tags: the caller's provider default_tags.

# --- Naming -------------------------------------------------------------------------------------

variable "name_prefix" {
  description = "First part of every resource name: <name_prefix>-<environment>-..."
  type        = string
  default     = "tascomi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and '-', starting with a letter, at most 20 characters."
  }
}

variable "environment" {
  description = "Deployment name, e.g. prod or stg; second part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,11}$", var.environment))
    error_message = "environment must be lowercase letters, digits and '-', starting with a letter, at most 12 characters."
  }
}

variable "aws_region" {
  description = "Region of every resource, e.g. eu-west-2: the region of the aws provider the caller passes."
  type        = string
}

# --- The pipeline file --------------------------------------------------------------------------

variable "pipeline_file" {
  description = "Path of the pipeline file (the YAML the services read) whose tables get a schedule each. Default: pipeline.yaml at the repository root."
  type        = string
  default     = null
}

# --- Images -------------------------------------------------------------------------------------

variable "image_repository" {
  description = "Repository of the pipeline image (the Dockerfile at the repository root), without tag, e.g. 123456789012.dkr.ecr.eu-west-2.amazonaws.com/tascomi."
  type        = string
}

variable "image_tag" {
  description = "Image tag every service runs, unless image_tags names another for a stage."
  type        = string
}

variable "image_tags" {
  description = "Per-stage image tag overrides (ingest, parse, recast, snapshot), e.g. to roll one stage forward first."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for stage in keys(var.image_tags) : contains(["ingest", "parse", "recast", "snapshot"], stage)])
    error_message = "image_tags keys must be stage names: ingest, parse, recast, snapshot."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository holding the image; the task execution role may pull from it. Null when the image is in a registry that needs no AWS permission."
  type        = string
  default     = null
}

variable "cpu_architecture" {
  description = "CPU architecture the image was built for: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# --- Network ------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the tasks (private subnets with a NAT gateway or VPC endpoints for S3, SQS, Glue, Secrets Manager, ECR and CloudWatch Logs, plus a route to the Tascomi API)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (only for subnets routed to an internet gateway without NAT)."
  type        = bool
  default     = false
}

variable "additional_security_group_ids" {
  description = "Security groups added to the tasks beside the one this configuration creates (HTTPS egress only)."
  type        = list(string)
  default     = []
}

variable "egress_cidr_blocks" {
  description = "Where tasks may open HTTPS connections: the Tascomi API and the AWS endpoints."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# --- Storage and catalog ------------------------------------------------------------------------

variable "create_buckets" {
  description = "Create the raw and refined buckets. False: use existing buckets named by raw_bucket_name and refined_bucket_name (their encryption, public access block and TLS policy are then the owner's)."
  type        = bool
  default     = true
}

variable "raw_bucket_name" {
  description = "Raw-zone bucket. Default when created: <name_prefix>-<environment>-raw-zone-<account id>."
  type        = string
  default     = null

  validation {
    condition     = var.create_buckets || var.raw_bucket_name != null
    error_message = "With create_buckets = false, set raw_bucket_name to the existing bucket."
  }
}

variable "refined_bucket_name" {
  description = "Refined-zone bucket. Default when created: <name_prefix>-<environment>-refined-zone-<account id>."
  type        = string
  default     = null

  validation {
    condition     = var.create_buckets || var.refined_bucket_name != null
    error_message = "With create_buckets = false, set refined_bucket_name to the existing bucket."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete created buckets with their data (test environments only)."
  type        = bool
  default     = false
}

variable "bucket_versioning" {
  description = "Keep earlier versions of objects in created buckets (recovery from a mistaken delete)."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted object version is kept when versioning is on."
  type        = number
  default     = 30
}

variable "snapshot_retention_days" {
  description = "Delete snapshot partition files older than this many days (null: keep every snapshot; `tascomi rollback` goes back as far as this keeps). The latest snapshot of a weekly table is up to 7 days old, and a stopped pipeline ages every snapshot, hence the lower bound."
  type        = number
  default     = 400

  validation {
    condition     = var.snapshot_retention_days == null || try(var.snapshot_retention_days >= 30, false)
    error_message = "snapshot_retention_days must be null or at least 30."
  }
}

variable "raw_response_retention_days" {
  description = "Delete raw API responses (planning/tascomi/api-responses/) older than this many days (null: keep them). They are personal data kept only to re-parse; the parsed, increment and snapshot layers do not depend on them."
  type        = number
  default     = 180

  validation {
    condition     = var.raw_response_retention_days == null || try(var.raw_response_retention_days >= 30, false)
    error_message = "raw_response_retention_days must be null or at least 30."
  }
}

variable "access_log_bucket" {
  description = "Bucket receiving S3 server access logs of created buckets (null: no access logging)."
  type        = string
  default     = null
}

variable "create_glue_databases" {
  description = "Create the Glue databases <database_prefix>-tascomi-raw-zone and <database_prefix>-tascomi-refined-zone. False: they exist already."
  type        = bool
  default     = true
}

variable "database_prefix" {
  description = "Prefix of the Glue (Athena) database names. Default: <name_prefix>-<environment>."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting buckets, queues, logs, schedules and the created alarm topic (its key policy must let CloudWatch Logs, CloudWatch alarms, EventBridge and this account use it: docs/deploy.md). Null: AWS-managed keys for buckets (aws/s3) and queues (SQS-managed SSE), and a key created for the alarm topic (alarms.tf), because CloudWatch alarms cannot publish to a topic under aws/sns."
  type        = string
  default     = null
}

# --- The Tascomi API ----------------------------------------------------------------------------

variable "tascomi_api_base_url" {
  description = "Base URL of the council's Tascomi REST API, e.g. https://<council>-planning.idoxcloud.com/rest/v1/."
  type        = string

  validation {
    condition     = can(regex("^https://.+/$", var.tascomi_api_base_url))
    error_message = "tascomi_api_base_url must be an https URL ending in '/'."
  }
}

variable "tascomi_api_secret_arn" {
  description = "ARN of the Secrets Manager secret holding {\"public_key\": ..., \"private_key\": ...}; only ingest-svc may read it."
  type        = string
}

variable "tascomi_api_secret_kms_key_arn" {
  description = "KMS key of that secret, when it is not the AWS-managed aws/secretsmanager key."
  type        = string
  default     = null
}

variable "tascomi_api_max_concurrent_requests" {
  description = "API requests in flight at once per ingest task."
  type        = number
  default     = 4
}

# --- The column-type dictionary (dictionary.tf) -------------------------------------------------

variable "column_type_dictionary_path" {
  description = "Path, on the machine running Terraform, of the council's column-type dictionary (JSON). The module uploads it to the refined bucket (planning/tascomi/_config/column-type-dictionary-<hash>.json) and the services read it from there at start-up; a changed file is a new object and a rolling restart. Set this or column_type_dictionary_s3_uri."
  type        = string
  default     = null

  validation {
    condition     = (var.column_type_dictionary_path == null) != (var.column_type_dictionary_s3_uri == null)
    error_message = "Set exactly one of column_type_dictionary_path (a file the module uploads) and column_type_dictionary_s3_uri (an object the council keeps)."
  }

  validation {
    condition     = var.column_type_dictionary_path == null || can(jsondecode(file(var.column_type_dictionary_path)))
    error_message = "column_type_dictionary_path must name a readable JSON file (the column-type dictionary)."
  }
}

variable "column_type_dictionary_s3_uri" {
  description = "s3://bucket/key of a column-type dictionary the council keeps itself, instead of column_type_dictionary_path. The task roles may read exactly that object; a KMS key encrypting it other than kms_key_arn must let them decrypt. After changing the object, restart the services (docs/deploy.md)."
  type        = string
  default     = null

  validation {
    condition     = var.column_type_dictionary_s3_uri == null || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^/].*[^/]$", var.column_type_dictionary_s3_uri))
    error_message = "column_type_dictionary_s3_uri must be s3://bucket/key, naming one object."
  }
}

# --- Queues and services ------------------------------------------------------------------------

variable "stages" {
  description = <<-EOT
    Per-stage overrides (keys ingest, parse, recast, snapshot); unset fields keep the defaults in
    locals.tf. Fields: cpu and memory (Fargate units), concurrency (messages handled at once by a
    task), max_tasks, fast_scale_out_backlog (waiting messages from which scaling adds two
    tasks a minute instead of one; autoscaling.tf),
    visibility_timeout_secs (longer than the stage's longest message: the services renew it at
    half-time, so it bounds how soon a crashed task's message comes back).
  EOT
  type = map(object({
    cpu                     = optional(number)
    memory                  = optional(number)
    concurrency             = optional(number)
    max_tasks               = optional(number)
    fast_scale_out_backlog  = optional(number)
    visibility_timeout_secs = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for stage in keys(var.stages) : contains(["ingest", "parse", "recast", "snapshot"], stage)])
    error_message = "stages keys must be stage names: ingest, parse, recast, snapshot."
  }
}

variable "fargate_spot_stages" {
  description = "Stages whose tasks run on Fargate Spot (about 70 % cheaper; AWS may stop a task with two minutes' notice, and its messages are handled again), e.g. [\"parse\", \"recast\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for stage in var.fargate_spot_stages : contains(["ingest", "parse", "recast", "snapshot"], stage)])
    error_message = "fargate_spot_stages must name stages: ingest, parse, recast, snapshot."
  }
}

variable "max_receive_count" {
  description = "Receives of a message before SQS moves it to the stage's dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "message_retention_secs" {
  description = "How long an unhandled message stays on a stage queue."
  type        = number
  default     = 345600 # 4 days: a weekend's outage
}

variable "dead_letter_retention_secs" {
  description = "How long a message stays on a dead-letter queue (the SQS maximum by default)."
  type        = number
  default     = 1209600 # 14 days
}

variable "stop_timeout_secs" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate allows at most 120). The services stop taking messages and finish in-flight ones within this less 10 s."
  type        = number
  default     = 120

  validation {
    condition     = var.stop_timeout_secs >= 20 && var.stop_timeout_secs <= 120
    error_message = "stop_timeout_secs must be between 20 and 120."
  }
}

variable "scale_in_idle_minutes" {
  description = "Minutes a stage queue must be empty (nothing visible, nothing in flight) before its service scales to zero."
  type        = number
  default     = 15
}

variable "log_retention_days" {
  description = "Retention of the services' CloudWatch log groups."
  type        = number
  default     = 365
}

variable "otel_exporter_otlp_endpoint" {
  description = "OTLP endpoint for traces (empty: no export). Ignored with enable_trace_collector, which points the services at the collector beside them."
  type        = string
  default     = ""
}

variable "enable_trace_collector" {
  description = "Run an AWS Distro for OpenTelemetry collector beside each service: the service sends its traces over OTLP to localhost:4317 (inside the task) and the collector sends them to AWS X-Ray over HTTPS (443). The task roles get xray:PutTraceSegments."
  type        = bool
  default     = false
}

variable "trace_collector_image" {
  description = "The collector's image. Tasks that reach AWS through VPC endpoints only (no NAT gateway) cannot pull from public ECR: mirror it into a private repository (e.g. an ECR pull-through cache) and name that here."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.45.1"
}

variable "container_insights" {
  description = "Enable CloudWatch Container Insights on the cluster."
  type        = bool
  default     = true
}

# --- Schedule -----------------------------------------------------------------------------------

variable "schedule_time" {
  description = "London local time (HH:MM) of the nightly ingest requests."
  type        = string
  default     = "02:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.schedule_time))
    error_message = "schedule_time must be HH:MM (24-hour)."
  }
}

variable "weekly_day" {
  description = "Day of the week of weekly tables (cron day names)."
  type        = string
  default     = "SUN"

  validation {
    condition     = contains(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], var.weekly_day)
    error_message = "weekly_day must be one of MON TUE WED THU FRI SAT SUN."
  }
}

variable "event_bus_name" {
  description = "Name of the EventBridge bus on which snapshot-svc announces each published snapshot (source tascomi.pipeline, detail-type \"Tascomi snapshot published\"); \"default\" is the account's default bus. The bus must exist; the snapshot task may put events on it and on no other."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name must be a bus name (letters, digits, . _ -), not an ARN."
  }
}

variable "schedules_enabled" {
  description = "False pauses every nightly schedule (the services stay deployed)."
  type        = bool
  default     = true
}

# --- Alarms -------------------------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "Existing SNS topic for alarms. Null: a topic is created (subscribe alarm_email_addresses to it)."
  type        = string
  default     = null
}

variable "alarm_email_addresses" {
  description = "Email addresses subscribed to the created alarm topic (each must confirm)."
  type        = list(string)
  default     = []
}

variable "oldest_message_age_alarm_secs" {
  description = "Alarm when the oldest message of a stage queue is older than this."
  type        = number
  default     = 7200
}

variable "freshness_grace_hours" {
  description = "Hours a table's snapshot may be late beyond its schedule (a day, or a week for weekly tables) before the freshness alarm fires: the night's run time."
  type        = number
  default     = 6

  validation {
    condition     = var.freshness_grace_hours >= 1 && var.freshness_grace_hours <= 48
    error_message = "freshness_grace_hours must be between 1 and 48."
  }
}

variable "notify_failed_tasks" {
  description = "Send each task that stops with a non-zero exit (or fails to start) to the alarm topic. A crash loop is reported once by ECS (SERVICE_TASK_START_IMPAIRED) whatever this says."
  type        = bool
  default     = true
}

variable "chat_slack" {
  description = "Post alarms to a Slack channel through AWS Chatbot: {workspace_id, channel_id}. The workspace must first be authorised in the AWS Chatbot console; AWS Chatbot must serve the region (else subscribe your own channel configuration to the output alarm_topic_arn)."
  type = object({
    workspace_id = string
    channel_id   = string
  })
  default = null
}

variable "chat_teams" {
  description = "Post alarms to a Microsoft Teams channel through AWS Chatbot: {tenant_id, team_id, channel_id}; the team must first be authorised in the AWS Chatbot console."
  type = object({
    tenant_id  = string
    team_id    = string
    channel_id = string
  })
  default = null
}

variable "chat_webhook_url" {
  description = "An incoming webhook taking {\"text\": \"...\"} (Google Chat, Slack or Teams workflows) that receives every alarm state change, through an EventBridge API destination. Its key is part of the URL: it is kept in the Terraform state."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.chat_webhook_url == null || can(regex("^https://", var.chat_webhook_url))
    error_message = "chat_webhook_url must be an https URL."
  }
}

variable "dashboard" {
  description = "Create the CloudWatch dashboard <name_prefix>-<environment> (dashboard.tf)."
  type        = bool
  default     = true
}

# --- People -------------------------------------------------------------------------------------

variable "operator_principal_arns" {
  description = "IAM principals (SSO permission-set roles, users, a CI role) that may assume the operator role (operators.tf). Empty: any principal of this account whose own IAM allows sts:AssumeRole on it."
  type        = list(string)
  default     = []
}

variable "read_only_principal_arns" {
  description = "IAM principals that may assume the read-only role (`tascomi status`, `tascomi drift`). Empty: as for the operator role."
  type        = list(string)
  default     = []
}

# --- Athena -------------------------------------------------------------------------------------

variable "athena_bytes_scanned_cutoff" {
  description = "Largest scan of one query in the workgroup, in bytes (Athena cancels a query beyond it). Default 100 GiB."
  type        = number
  default     = 107374182400

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10 MiB (Athena's minimum)."
  }
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept under the refined bucket's athena-results/ prefix."
  type        = number
  default     = 30
}
