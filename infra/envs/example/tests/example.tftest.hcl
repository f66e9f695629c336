# The example root module: it calls the module with the inputs of example.tfvars and plans
# against a mocked AWS provider (scripts/check-infra.sh), so a council's starting point is
# known to plan.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-2:123456789012:alarms" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-2:123456789012:mock"
      url = "https://sqs.eu-west-2.amazonaws.com/123456789012/mock"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
}

variables {
  environment              = "prod"
  aws_region               = "eu-west-2"
  image_repository         = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/tascomi"
  image_tag                = "2026-11-21.1"
  ecr_repository_arn       = "arn:aws:ecr:eu-west-2:123456789012:repository/tascomi"
  vpc_id                   = "vpc-0123456789abcdef0"
  subnet_ids               = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  tascomi_api_base_url     = "https://council-planning.idoxcloud.com/rest/v1/"
  tascomi_api_secret_arn   = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:tascomi/prod/api-keys-AbCdEf"
  database_prefix          = "council"
  alarm_email_addresses    = ["data-platform@council.example"]
  operator_principal_arns  = ["arn:aws:iam::123456789012:role/DataPlatformAdmin"]
  read_only_principal_arns = ["arn:aws:iam::123456789012:role/DataPlatformReadOnly"]
  # example.tfvars names a file of the council's repository; this test an object in S3.
  column_type_dictionary_s3_uri = "s3://council-config/tascomi/column-type-dictionary.json"
}

run "the_example_plans_and_exposes_what_operators_need" {
  command = plan

  assert {
    condition     = output.pipeline.athena_databases.refined == "council-tascomi-refined-zone"
    error_message = "the Athena databases keep the council's prefix"
  }

  assert {
    condition     = length(output.pipeline.queue_urls) == 4 && length(output.pipeline.dead_letter_queue_urls) == 4
    error_message = "the caller gets every queue"
  }

  assert {
    condition     = alltrue([for name in ["operator_role_arn", "read_only_role_arn", "alarm_topic_arn", "dashboard_url", "operator_environment"] : contains(keys(output.pipeline), name)])
    error_message = "the caller gets the roles and the alarm topic"
  }
}
