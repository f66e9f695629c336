# A council's deployment of the pipeline: copy this folder into the council's own Terraform
# repository (or use it in place), fill in a tfvars file and a backend file, then
#   terraform init -backend-config=backend.hcl
#   terraform apply -var-file=prod.tfvars
# From another repository, point `source` at this repository's module, pinned to a release:
#   source = "git::https://github.com/<org>/tascomi-pipeline.git//infra/modules/tascomi-pipeline?ref=v1.2.0"
# See docs/deploy.md.

terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The version the module is tested with; .terraform.lock.hcl pins the exact build.
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, key, region and locking come from `-backend-config=FILE`
  # (backend.hcl.example), so nothing here is council-specific.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Application = "tascomi-pipeline"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

module "tascomi" {
  source = "../../modules/tascomi-pipeline"

  name_prefix     = var.name_prefix
  environment     = var.environment
  aws_region      = var.aws_region
  database_prefix = var.database_prefix
  pipeline_file   = var.pipeline_file

  column_type_dictionary_path   = var.column_type_dictionary_path
  column_type_dictionary_s3_uri = var.column_type_dictionary_s3_uri

  image_repository   = var.image_repository
  image_tag          = var.image_tag
  ecr_repository_arn = var.ecr_repository_arn
  cpu_architecture   = var.cpu_architecture

  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids

  tascomi_api_base_url   = var.tascomi_api_base_url
  tascomi_api_secret_arn = var.tascomi_api_secret_arn

  kms_key_arn             = var.kms_key_arn
  snapshot_retention_days = var.snapshot_retention_days
  schedules_enabled       = var.schedules_enabled

  alarm_email_addresses = var.alarm_email_addresses
  chat_slack            = var.chat_slack
  chat_teams            = var.chat_teams
  chat_webhook_url      = var.chat_webhook_url

  operator_principal_arns  = var.operator_principal_arns
  read_only_principal_arns = var.read_only_principal_arns
}
