# The module's Terraform and provider requirements. It has no provider block and no backend:
# the caller (infra/envs/example, or the council's own root module) configures both.

terraform {
  # 1.9: variable validations that refer to other variables.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Tested with 5.100 (scripts/check-infra.sh); 6.x is a major version this module has not
      # been tested with. 5.80: the AWS Chatbot channel resources.
      version = ">= 5.80, < 6.0"
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
