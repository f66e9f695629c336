# The inputs a council sets (example.tfvars). Every other input of the module keeps its default
# (infra/modules/tascomi-pipeline/variables.tf); add the ones you change to main.tf.

variable "name_prefix" {
  type    = string
  default = "tascomi"
}

variable "environment" {
  type = string
}

variable "aws_region" {
  type = string
}

variable "tags" {
  description = "Tags on every resource (the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "database_prefix" {
  type    = string
  default = null
}

variable "pipeline_file" {
  description = "The pipeline file built into the image (null: the repository's pipeline.yaml)."
  type        = string
  default     = null
}

variable "column_type_dictionary_path" {
  description = "The council's column-type dictionary (JSON), uploaded by the module; or set column_type_dictionary_s3_uri."
  type        = string
  default     = null
}

variable "column_type_dictionary_s3_uri" {
  description = "s3://bucket/key of a column-type dictionary the council keeps itself (instead of column_type_dictionary_path)."
  type        = string
  default     = null
}

variable "image_repository" {
  type = string
}

variable "image_tag" {
  type = string
}

variable "ecr_repository_arn" {
  type    = string
  default = null
}

variable "cpu_architecture" {
  type    = string
  default = "X86_64"
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "tascomi_api_base_url" {
  type = string
}

variable "tascomi_api_secret_arn" {
  type = string
}

variable "kms_key_arn" {
  type    = string
  default = null
}

variable "snapshot_retention_days" {
  type    = number
  default = 400
}

variable "schedules_enabled" {
  type    = bool
  default = true
}

variable "alarm_email_addresses" {
  type    = list(string)
  default = []
}

variable "chat_slack" {
  type    = object({ workspace_id = string, channel_id = string })
  default = null
}

variable "chat_teams" {
  type    = object({ tenant_id = string, team_id = string, channel_id = string })
  default = null
}

variable "chat_webhook_url" {
  type      = string
  default   = null
  sensitive = true
}

variable "operator_principal_arns" {
  type    = list(string)
  default = []
}

variable "read_only_principal_arns" {
  type    = list(string)
  default = []
}
