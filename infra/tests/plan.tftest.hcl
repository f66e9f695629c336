# `terraform test` with a mocked AWS provider: plans the whole configuration offline (no
# credentials, no API calls; the provider schema comes from a local plugin directory, see
# scripts/check-infra.sh) and checks what the plan would create from the real pipeline file.

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
  # The provider checks ARN arguments; mocked ARNs must look like ARNs.
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-2:123456789012:alarms" }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:eu-west-2:123456789012:scalingPolicy:mock" }
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
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-2:123456789012:log-group:mock" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:eu-west-2:123456789012:task-definition/mock:1" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-2:123456789012:cluster/mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
}

variables {
  environment            = "test"
  aws_region             = "eu-west-2"
  image_repository       = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/tascomi"
  image_tag              = "test"
  vpc_id                 = "vpc-0123456789abcdef0"
  subnet_ids             = ["subnet-0123456789abcdef0"]
  tascomi_api_base_url   = "https://council-planning.idoxcloud.com/rest/v1/"
  tascomi_api_secret_arn = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:tascomi-api-AbCdEf"
}

run "one_schedule_per_pipeline_table" {
  command = plan

  assert {
    condition     = length(aws_scheduler_schedule.ingest) == length(yamldecode(file("${path.module}/../pipeline.yaml")).tables)
    error_message = "every table of the pipeline file gets one schedule"
  }

  assert {
    condition     = aws_scheduler_schedule.ingest["applications"].schedule_expression == "cron(0 2 * * ? *)"
    error_message = "daily tables run every night at 02:00"
  }

  assert {
    condition     = aws_scheduler_schedule.ingest["wards"].schedule_expression == "cron(0 2 ? * SUN *)"
    error_message = "weekly tables run on Sunday"
  }

  assert {
    condition     = alltrue([for s in aws_scheduler_schedule.ingest : s.schedule_expression_timezone == "Europe/London" && s.flexible_time_window[0].mode == "OFF"])
    error_message = "schedules fire on time in London time"
  }

  assert {
    condition     = jsondecode(aws_scheduler_schedule.ingest["appeals"].target[0].input).table == "appeals"
    error_message = "each schedule asks for its own table"
  }
}

# Apply against the mock: computed values (queue URLs in the task definitions) get mock values.
run "a_queue_a_dead_letter_queue_a_service_and_a_role_per_stage" {
  command = apply

  assert {
    condition     = toset(keys(aws_sqs_queue.stage)) == toset(["ingest", "parse", "recast", "snapshot"])
    error_message = "one queue per stage"
  }

  assert {
    condition     = aws_sqs_queue.dead_letter["parse"].name == "tascomi-test-parse-dlq"
    error_message = "dead-letter queues are named <prefix>-<environment>-<stage>-dlq"
  }

  assert {
    condition     = length(aws_ecs_service.stage) == 4 && length(aws_iam_role.task) == 4 && length(aws_ecs_task_definition.stage) == 4
    error_message = "one service, task definition and role per stage"
  }

  assert {
    condition     = alltrue([for t in aws_appautoscaling_target.stage : t.min_capacity == 0])
    error_message = "every stage scales down to zero"
  }

  assert {
    condition     = local.environment["snapshot"].TASCOMI_NEXT_QUEUE_URL == ""
    error_message = "the snapshot has no next stage"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.stage["recast"].container_definitions)[0].user == "10001:10001"
    error_message = "containers run as the image's non-root user"
  }
}

run "stage_overrides_keep_the_other_defaults" {
  command = plan

  variables {
    stages = { snapshot = { memory = 16384 } }
  }

  assert {
    condition     = aws_ecs_task_definition.stage["snapshot"].memory == "16384" && aws_ecs_task_definition.stage["snapshot"].cpu == "2048"
    error_message = "an override changes one field only"
  }
}

run "existing_buckets_need_their_names" {
  command = plan

  variables {
    create_buckets = false
  }

  expect_failures = [var.raw_bucket_name, var.refined_bucket_name]
}

run "a_customer_key_and_an_existing_topic" {
  command = plan

  variables {
    kms_key_arn                    = "arn:aws:kms:eu-west-2:123456789012:key/11111111-2222-3333-4444-555555555555"
    tascomi_api_secret_kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/66666666-7777-8888-9999-000000000000"
    alarm_sns_topic_arn            = "arn:aws:sns:eu-west-2:123456789012:data-platform-alarms"
    ecr_repository_arn             = "arn:aws:ecr:eu-west-2:123456789012:repository/tascomi"
    access_log_bucket              = "council-access-logs"
    snapshot_retention_days        = 90
    bucket_versioning              = false
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 0 && aws_cloudwatch_metric_alarm.dead_letter_messages["ingest"].alarm_actions == toset([var.alarm_sns_topic_arn])
    error_message = "alarms go to the given topic"
  }

  assert {
    condition     = aws_sqs_queue.stage["ingest"].kms_master_key_id == var.kms_key_arn
    error_message = "queues use the customer key"
  }

  assert {
    condition     = length(aws_s3_bucket_logging.zone) == 2 && length(aws_s3_bucket_versioning.zone) == 0
    error_message = "access logging on, versioning off"
  }
}

run "a_schedule_time_must_be_a_time" {
  command = plan

  variables {
    schedule_time = "2am"
  }

  expect_failures = [var.schedule_time]
}

run "old_snapshots_are_kept_at_least_thirty_days" {
  command = plan

  variables {
    snapshot_retention_days = 7
  }

  expect_failures = [var.snapshot_retention_days]
}
