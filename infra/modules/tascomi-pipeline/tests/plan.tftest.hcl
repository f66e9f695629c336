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
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
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
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/mock" }
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
  # The council's dictionary, uploaded by the module (dictionary.tf).
  column_type_dictionary_path = "tests/fixtures/column-type-dictionary.json"
}

run "one_schedule_per_pipeline_table" {
  command = plan

  assert {
    condition     = length(aws_scheduler_schedule.ingest) == length(yamldecode(file("${path.module}/../../../pipeline.yaml")).tables)
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

  assert {
    condition     = jsondecode(aws_ecs_task_definition.stage["recast"].container_definitions)[0].healthCheck.command == ["CMD", "/usr/local/bin/recast-svc", "--health"]
    error_message = "ECS probes each service with its own --health"
  }

  assert {
    condition = alltrue([
      for td in aws_ecs_task_definition.stage : length(jsondecode(td.container_definitions)) == 1
    ]) && local.environment["parse"].OTEL_EXPORTER_OTLP_ENDPOINT == ""
    error_message = "no trace collector and no trace export unless asked for"
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
    condition     = length(aws_sns_topic.alarms) == 0 && aws_cloudwatch_metric_alarm.queue["ingest-dead-letters"].alarm_actions == toset([var.alarm_sns_topic_arn])
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

# Alarms that deliver: with no key given, the created topic is encrypted with a key made for it
# (not aws/sns, which CloudWatch alarms cannot use), whose policy lets CloudWatch alarms and
# EventBridge encrypt with it, from this account only; the topic policy lets both publish.
run "the_alarm_topic_has_a_key_cloudwatch_and_eventbridge_may_use" {
  command = apply

  variables {
    alarm_email_addresses = ["data-platform@council.example"]
  }

  assert {
    condition     = length(aws_kms_key.alarms) == 1 && aws_sns_topic.alarms[0].kms_master_key_id == aws_kms_key.alarms[0].arn
    error_message = "the alarm topic is encrypted with the key made for it"
  }

  assert {
    condition     = aws_sns_topic.alarms[0].kms_master_key_id != "alias/aws/sns" && aws_kms_key.alarms[0].enable_key_rotation
    error_message = "not the AWS-managed aws/sns key; the key rotates"
  }

  assert {
    condition = contains(data.aws_iam_policy_document.alarm_key[0].source_policy_documents, data.aws_iam_policy_document.alarm_publishers["key"].json) && anytrue([
      for s in data.aws_iam_policy_document.alarm_publishers["key"].statement :
      toset(flatten([for p in s.principals : p.identifiers if p.type == "Service"])) == toset(["cloudwatch.amazonaws.com", "events.amazonaws.com"])
      && toset(s.actions) == toset(["kms:Decrypt", "kms:GenerateDataKey"])
      && anytrue([for c in s.condition : c.variable == "aws:SourceAccount" && c.values == tolist(["123456789012"])])
    ])
    error_message = "the key policy lets CloudWatch alarms and EventBridge of this account decrypt and generate data keys"
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.alarm_key[0].statement :
      contains(flatten([for p in s.principals : p.identifiers if p.type == "AWS"]), "arn:aws:iam::123456789012:root")
      && contains(s.actions, "kms:PutKeyPolicy")
    ])
    error_message = "the account can still manage the key (no lock-out)"
  }

  assert {
    condition     = aws_kms_key.alarms[0].policy == data.aws_iam_policy_document.alarm_key[0].json
    error_message = "the key carries that policy"
  }

  assert {
    condition = contains(data.aws_iam_policy_document.alarm_topic[0].source_policy_documents, data.aws_iam_policy_document.alarm_publishers["topic"].json) && anytrue([
      for s in data.aws_iam_policy_document.alarm_publishers["topic"].statement :
      contains(s.actions, "sns:Publish") && contains(flatten([for p in s.principals : p.identifiers]), "events.amazonaws.com")
      && s.resources == toset(["arn:aws:sns:eu-west-2:123456789012:${aws_sns_topic.alarms[0].name}"])
    ]) && aws_sns_topic_policy.alarms[0].arn == aws_sns_topic.alarms[0].arn
    error_message = "EventBridge may publish the ECS failure events to the topic"
  }

  assert {
    condition     = length(aws_sns_topic_subscription.alarm_email) == 1
    error_message = "the email address is subscribed"
  }
}

# A deployment key given: it encrypts the topic, and no other key is made.
run "a_deployment_key_encrypts_the_topic" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = length(aws_kms_key.alarms) == 0 && aws_sns_topic.alarms[0].kms_master_key_id == var.kms_key_arn
    error_message = "the given key encrypts the topic"
  }
}

run "every_table_has_a_freshness_alarm_and_ingest_losses_alarm" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.snapshot_freshness) == length(local.tables)
    error_message = "one freshness alarm per table of the pipeline file"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.snapshot_freshness["applications"].threshold == 30
      && aws_cloudwatch_metric_alarm.snapshot_freshness["wards"].threshold == 174
      && aws_cloudwatch_metric_alarm.snapshot_freshness["wards"].evaluation_periods == 168
      && aws_cloudwatch_metric_alarm.snapshot_freshness["applications"].treat_missing_data == "breaching"
      && aws_cloudwatch_metric_alarm.snapshot_freshness["applications"].namespace == "Tascomi"
      && aws_cloudwatch_metric_alarm.snapshot_freshness["applications"].dimensions == tomap({ Table = "applications" })
    )
    error_message = "a daily table is stale after 24 + 6 hours, a weekly one after 168 + 6; no report is stale"
  }

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.ingest)) == toset(["FailedPages", "DaysCut"]) && aws_cloudwatch_log_metric_filter.ingest["FailedPages"].log_group_name == "/ecs/tascomi-test/ingest-svc"
    error_message = "failed pages and days cut raise alarms, from the ingest log"
  }

  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.ecs["task-failed"].event_pattern).detail.lastStatus == ["STOPPED"] && contains(keys(aws_cloudwatch_event_target.ecs), "task-failed")
    error_message = "a task stopping with an error reaches the topic"
  }

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.scheduler)) == toset(["TargetErrorCount", "InvocationDroppedCount"])
    error_message = "scheduler delivery failures raise alarms"
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.pipeline) == 1 && length(aws_chatbot_slack_channel_configuration.alarms) == 0 && length(aws_cloudwatch_event_api_destination.chat) == 0
    error_message = "a dashboard; no chat channel unless asked"
  }
}

run "alarms_in_a_chat_channel" {
  command = plan

  variables {
    chat_slack       = { workspace_id = "T0123456789", channel_id = "C0123456789" }
    chat_webhook_url = "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t"
  }

  assert {
    condition     = length(aws_chatbot_slack_channel_configuration.alarms) == 1 && length(aws_cloudwatch_event_api_destination.chat) == 1 && length(aws_cloudwatch_event_target.chat) == 1
    error_message = "Slack through AWS Chatbot, and the webhook through an API destination"
  }
}

# The operator role can do what reset, rollback, redrive, replay, adopt and retype do; the read-only role
# cannot change anything.
run "operator_and_read_only_roles" {
  command = plan

  variables {
    operator_principal_arns = ["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-2/AWSReservedSSO_DataPlatform_0123456789abcdef"]
  }

  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.operator.statement : s.actions])) == toset([
      "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
      "glue:DeletePartition", "glue:BatchDeletePartition", "s3:DeleteObject",
      "glue:CreateTable", "glue:UpdateTable", "glue:CreatePartition", "glue:UpdatePartition", "s3:PutObject",
    ])
    error_message = "the operator role adds exactly sending work, redriving dead letters, removing partitions, registering them (adopt), setting column types (retype) and writing the ingest state to the read-only grants"
  }

  assert {
    condition = alltrue([
      for a in flatten([for s in data.aws_iam_policy_document.read_only.statement : s.actions]) :
      !can(regex("(Delete|Put|Send|Create|Update)", a))
    ])
    error_message = "the read-only role deletes, writes and sends nothing"
  }

  assert {
    condition     = toset(flatten([for p in data.aws_iam_policy_document.people_assume["operator"].statement[0].principals : p.identifiers])) == toset(var.operator_principal_arns)
    error_message = "only the named principals may assume the operator role"
  }
}

run "spot_lifecycle_and_athena" {
  command = plan

  variables {
    fargate_spot_stages = ["parse", "recast"]
  }

  assert {
    condition = (
      one(aws_ecs_service.stage["parse"].capacity_provider_strategy).capacity_provider == "FARGATE_SPOT"
      && aws_ecs_service.stage["ingest"].launch_type == "FARGATE"
      && length(aws_ecs_service.stage["ingest"].capacity_provider_strategy) == 0
    )
    error_message = "the named stages run on Fargate Spot, the others on Fargate"
  }

  assert {
    condition = (
      contains([for r in aws_s3_bucket_lifecycle_configuration.zone["raw"].rule : r.id], "expire-old-api-responses")
      && contains([for r in aws_s3_bucket_lifecycle_configuration.zone["refined"].rule : r.id], "expire-old-snapshots")
    )
    error_message = "raw responses and old snapshots expire by default"
  }

  assert {
    condition = (
      aws_athena_workgroup.pipeline.configuration[0].enforce_workgroup_configuration
      && aws_athena_workgroup.pipeline.configuration[0].bytes_scanned_cutoff_per_query == 107374182400
      && aws_athena_workgroup.pipeline.configuration[0].result_configuration[0].encryption_configuration[0].encryption_option == "SSE_S3"
    )
    error_message = "the Athena workgroup enforces encrypted results and a scan limit"
  }

  assert {
    condition     = alltrue([for q in aws_sqs_queue.stage : q.visibility_timeout_seconds == 300])
    error_message = "short visibility timeouts: the services renew leases"
  }
}

# The module creates the Glue databases: the services are told so (they only check that the
# database exists) and no task role may create one (Lake Formation would deny it anyway).
run "the_services_never_create_glue_databases" {
  command = plan

  assert {
    condition     = alltrue([for stage, env in local.environment : env.TASCOMI_MANAGE_DATABASES == "false"])
    error_message = "every service runs with TASCOMI_MANAGE_DATABASES=false"
  }

  assert {
    condition     = length(aws_glue_catalog_database.zone) == 2
    error_message = "the module creates both databases"
  }

  assert {
    condition = !contains(flatten([
      for s in concat(
        data.aws_iam_policy_document.task["ingest"].statement,
        data.aws_iam_policy_document.task["parse"].statement,
        data.aws_iam_policy_document.task["recast"].statement,
        data.aws_iam_policy_document.task["snapshot"].statement,
      ) : s.actions
    ]), "glue:CreateDatabase")
    error_message = "no task role may call glue:CreateDatabase"
  }
}

# Glue access per table: the prefixed layers by pattern (inline), the `<table>` layers by the
# explicit list of the pipeline's tables (managed policies attached to the stage's role).
run "glue_access_is_per_table" {
  command = plan

  assert {
    condition     = toset(keys(local.glue_table_policies)) == toset(["parse-publish-raw-0", "recast-read-raw-0", "snapshot-read-raw-0", "snapshot-publish-refined-0"])
    error_message = "parse publishes the parsed tables, recast reads them, snapshot reads them and publishes the snapshots: one policy each for this pipeline file"
  }

  assert {
    condition = data.aws_iam_policy_document.glue_tables["snapshot-publish-refined-0"].statement[0].resources == toset(concat(
      ["arn:aws:glue:eu-west-2:123456789012:catalog", "arn:aws:glue:eu-west-2:123456789012:database/tascomi-test-tascomi-refined-zone"],
      [for table in keys(yamldecode(file("${path.module}/../../../pipeline.yaml")).tables) : "arn:aws:glue:eu-west-2:123456789012:table/tascomi-test-tascomi-refined-zone/${table}"],
    )) && contains(data.aws_iam_policy_document.glue_tables["snapshot-publish-refined-0"].statement[0].actions, "glue:CreatePartition")
    error_message = "snapshot-svc publishes exactly the pipeline's tables in the refined zone, by name"
  }

  assert {
    condition = (
      contains(data.aws_iam_policy_document.glue_tables["recast-read-raw-0"].statement[0].resources, "arn:aws:glue:eu-west-2:123456789012:table/tascomi-test-tascomi-raw-zone/applications")
      && !contains(data.aws_iam_policy_document.glue_tables["recast-read-raw-0"].statement[0].actions, "glue:CreatePartition")
    )
    error_message = "recast-svc only reads the parsed tables"
  }

  assert {
    condition = alltrue(flatten([
      for policy in data.aws_iam_policy_document.glue_tables : [
        for s in policy.statement : [for r in s.resources : !strcontains(r, "*")]
      ]
    ]))
    error_message = "the per-table policies name tables, no pattern"
  }

  assert {
    condition = alltrue([
      for key, attachment in aws_iam_role_policy_attachment.glue_tables :
      attachment.role == aws_iam_role.task[local.glue_table_policies[key].stage].name
    ])
    error_message = "each policy is attached to its own stage's role"
  }

  assert {
    condition = (
      contains(flatten(data.aws_iam_policy_document.task["ingest"].statement[*].resources), "arn:aws:glue:eu-west-2:123456789012:table/tascomi-test-tascomi-raw-zone/api_response_*")
      && contains(flatten(data.aws_iam_policy_document.task["recast"].statement[*].resources), "arn:aws:glue:eu-west-2:123456789012:table/tascomi-test-tascomi-refined-zone/increment_*")
      && !anytrue([
        for r in flatten(concat(
          data.aws_iam_policy_document.task["ingest"].statement[*].resources,
          data.aws_iam_policy_document.task["parse"].statement[*].resources,
          data.aws_iam_policy_document.task["recast"].statement[*].resources,
          data.aws_iam_policy_document.task["snapshot"].statement[*].resources,
        )) : endswith(r, "-zone/*")
      ])
    )
    error_message = "raw responses and increments by name pattern; no task role reaches a whole database's tables"
  }
}

# Many tables with long names and a long database prefix: the lists split into parts, each
# small enough for a managed policy, together covering every table.
run "glue_table_policies_split_to_fit" {
  command = plan

  variables {
    pipeline_file   = "tests/fixtures/many-tables.yaml"
    database_prefix = "a-rather-long-council-database-prefix"
  }

  assert {
    condition     = length([for key, policy in local.glue_table_policies : key if policy.stage == "snapshot" && policy.access == "publish"]) > 1
    error_message = "a long list is split"
  }

  assert {
    condition     = toset(flatten([for policy in local.glue_table_policies : policy.tables if policy.stage == "snapshot" && policy.access == "publish"])) == toset(keys(local.tables))
    error_message = "the parts together cover every table"
  }

  # An upper bound: the statements as Terraform holds them (with every empty field) are longer
  # than the policy AWS stores.
  assert {
    condition     = alltrue([for policy in data.aws_iam_policy_document.glue_tables : length(jsonencode(policy.statement)) + 40 <= 6144])
    error_message = "each part fits the 6,144 characters of a managed policy"
  }
}

# Traces: an ADOT collector beside each service, OTLP inside the task, X-Ray over HTTPS.
run "trace_collector_sidecar" {
  command = apply

  variables {
    enable_trace_collector = true
  }

  assert {
    condition = alltrue([
      for stage, td in aws_ecs_task_definition.stage :
      [for c in jsondecode(td.container_definitions) : c.name] == [local.stages[stage].service, "aws-otel-collector"]
    ])
    error_message = "every task runs its service and the collector"
  }

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.stage["parse"].container_definitions)[1].essential == false
      && jsondecode(aws_ecs_task_definition.stage["parse"].container_definitions)[1].image == "public.ecr.aws/aws-observability/aws-otel-collector:v0.45.1"
      && jsondecode(aws_ecs_task_definition.stage["parse"].container_definitions)[1].readonlyRootFilesystem
      && jsondecode(aws_ecs_task_definition.stage["parse"].container_definitions)[0].dependsOn == [{ containerName = "aws-otel-collector", condition = "START" }]
    )
    error_message = "the collector starts first, read-only; a collector failure does not stop the service"
  }

  assert {
    condition     = local.environment["snapshot"].OTEL_EXPORTER_OTLP_ENDPOINT == "http://localhost:4317"
    error_message = "the services send their traces to the collector in their task"
  }

  assert {
    condition = (
      yamldecode(local.trace_collector_config).receivers.otlp.protocols.grpc.endpoint == "127.0.0.1:4317"
      && yamldecode(local.trace_collector_config).service.pipelines.traces.exporters == ["awsxray"]
      && yamldecode(local.trace_collector_config).exporters.awsxray.region == "eu-west-2"
    )
    error_message = "the collector listens on the task's loopback only and exports to X-Ray in the region"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) : anytrue([
        for s in data.aws_iam_policy_document.stage_common[stage].statement :
        toset(s.actions) == toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"])
      ])
    ])
    error_message = "every task role may send trace segments to X-Ray"
  }

  assert {
    condition = (
      length(aws_security_group.tasks.egress) == 1
      && one(aws_security_group.tasks.egress).from_port == 443
      && one(aws_security_group.tasks.egress).to_port == 443
    )
    error_message = "X-Ray is reached over HTTPS: no egress beyond 443"
  }
}

# The column-type dictionary is configuration in S3, not in the image: uploaded from the
# council's file under a key that changes with its content, named by the same s3:// URI in every
# service's environment, and readable by every task role as that one object only.
run "the_dictionary_is_uploaded_and_every_service_reads_that_object" {
  command = apply

  assert {
    condition = (
      length(aws_s3_object.column_type_dictionary) == 1
      && aws_s3_object.column_type_dictionary[0].bucket == local.refined_bucket
      && aws_s3_object.column_type_dictionary[0].source == "tests/fixtures/column-type-dictionary.json"
      && aws_s3_object.column_type_dictionary[0].key == "planning/tascomi/_config/column-type-dictionary-${substr(filesha256("tests/fixtures/column-type-dictionary.json"), 0, 16)}.json"
    )
    error_message = "the module uploads the dictionary file into the refined bucket, under a key holding its content's hash"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) :
      local.environment[stage].TASCOMI_COLUMN_TYPE_DICTIONARY == "s3://${local.refined_bucket}/${aws_s3_object.column_type_dictionary[0].key}"
    ])
    error_message = "every service is given the dictionary's s3:// URI"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) : contains(
        jsondecode(aws_ecs_task_definition.stage[stage].container_definitions)[0].environment,
        { name = "TASCOMI_COLUMN_TYPE_DICTIONARY", value = "s3://${local.refined_bucket}/${aws_s3_object.column_type_dictionary[0].key}" },
      )
    ])
    error_message = "the task definitions carry the URI"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) : length([
        for s in data.aws_iam_policy_document.stage_common[stage].statement : s
        if s.sid == "ReadColumnTypeDictionary"
        && toset(s.actions) == toset(["s3:GetObject"])
        && toset(s.resources) == toset(["arn:aws:s3:::${local.refined_bucket}/${aws_s3_object.column_type_dictionary[0].key}"])
      ]) == 1
    ])
    error_message = "every task role may s3:GetObject exactly the dictionary object"
  }
}

run "a_dictionary_the_council_keeps_in_s3" {
  command = plan

  variables {
    column_type_dictionary_path   = null
    column_type_dictionary_s3_uri = "s3://council-config/tascomi/column-type-dictionary.json"
  }

  assert {
    condition     = length(aws_s3_object.column_type_dictionary) == 0
    error_message = "nothing is uploaded"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) :
      local.environment[stage].TASCOMI_COLUMN_TYPE_DICTIONARY == "s3://council-config/tascomi/column-type-dictionary.json"
    ])
    error_message = "every service is given the council's URI"
  }

  assert {
    condition = alltrue([
      for stage in keys(local.stages) : anytrue([
        for s in data.aws_iam_policy_document.stage_common[stage].statement :
        s.sid == "ReadColumnTypeDictionary" && toset(s.resources) == toset(["arn:aws:s3:::council-config/tascomi/column-type-dictionary.json"])
      ])
    ])
    error_message = "every task role may read exactly that object"
  }
}

run "the_dictionary_is_named_once" {
  command = plan

  variables {
    column_type_dictionary_s3_uri = "s3://council-config/tascomi/column-type-dictionary.json"
  }

  expect_failures = [var.column_type_dictionary_path]
}

run "the_dictionary_is_required" {
  command = plan

  variables {
    column_type_dictionary_path = null
  }

  expect_failures = [var.column_type_dictionary_path]
}

run "a_dictionary_uri_names_one_object" {
  command = plan

  variables {
    column_type_dictionary_path   = null
    column_type_dictionary_s3_uri = "s3://council-config/"
  }

  expect_failures = [var.column_type_dictionary_s3_uri]
}

# Every table has a snapshot of every day: a weekly table's schedule sends a carry-forward
# request to the snapshot queue on the nights it is not fetched (schedule.tf, docs/snapshot.md).
run "weekly_tables_are_carried_forward_on_the_other_nights" {
  command = apply

  assert {
    condition = toset(keys(aws_scheduler_schedule.carry_forward)) == toset([
      for table, entry in yamldecode(file("${path.module}/../../../pipeline.yaml")).tables : table
      if try(entry.schedule, entry) == "weekly"
    ])
    error_message = "exactly the weekly tables of the pipeline file are carried forward"
  }

  assert {
    condition     = aws_scheduler_schedule.carry_forward["wards"].schedule_expression == "cron(0 2 ? * MON,TUE,WED,THU,FRI,SAT *)"
    error_message = "a weekly table is carried forward every night but its Sunday"
  }

  assert {
    condition     = alltrue([for s in aws_scheduler_schedule.carry_forward : s.schedule_expression_timezone == "Europe/London" && s.flexible_time_window[0].mode == "OFF"])
    error_message = "carry-forward schedules fire on time in London time"
  }

  assert {
    condition = jsondecode(aws_scheduler_schedule.carry_forward["wards"].target[0].input) == {
      version       = 1
      type          = "partition_ready"
      table         = "wards"
      layer         = "snapshot"
      partition     = {}
      location      = "s3://${aws_s3_bucket.zone["refined"].id}/planning/tascomi/snapshot/wards/"
      run_id        = "schedule"
      carry_forward = true
    }
    error_message = "the request is a carry-forward partition_ready for the table's snapshot (common/src/messages.rs)"
  }

  assert {
    condition     = aws_scheduler_schedule.carry_forward["wards"].target[0].arn == aws_sqs_queue.stage["snapshot"].arn && aws_scheduler_schedule.carry_forward["wards"].target[0].dead_letter_config[0].arn == aws_sqs_queue.dead_letter["snapshot"].arn
    error_message = "carry-forward requests go to the snapshot queue, undeliverable ones to its dead-letter queue"
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.scheduler.statement :
      s.sid == "SendCarryForwardRequests" && toset(s.actions) == toset(["sqs:SendMessage"])
    ])
    error_message = "the scheduler may send to the snapshot queue"
  }
}

run "another_weekly_day_is_skipped_instead" {
  command = plan

  variables {
    weekly_day = "WED"
  }

  assert {
    condition     = aws_scheduler_schedule.carry_forward["wards"].schedule_expression == "cron(0 2 ? * MON,TUE,THU,FRI,SAT,SUN *)"
    error_message = "the weekly day is the one night a weekly table is not carried forward"
  }

  assert {
    condition     = aws_scheduler_schedule.ingest["wards"].schedule_expression == "cron(0 2 ? * WED *)"
    error_message = "and the night it is fetched"
  }
}

# snapshot-svc announces each published snapshot on one EventBridge bus: it is told which
# (TASCOMI_EVENT_BUS) and may put events on that bus only; no other role may put events.
run "the_snapshot_task_announces_on_exactly_its_bus" {
  command = plan

  variables {
    event_bus_name = "tascomi-events"
  }

  assert {
    condition = [
      for s in data.aws_iam_policy_document.task["snapshot"].statement : s.resources
      if contains(s.actions, "events:PutEvents")
    ] == [toset(["arn:aws:events:eu-west-2:123456789012:event-bus/tascomi-events"])]
    error_message = "the snapshot task role may put events on the named bus and on no other"
  }

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.task["snapshot"].statement :
      !contains(s.actions, "events:PutEvents") || length(s.actions) == 1
    ])
    error_message = "events:PutEvents is granted alone"
  }

  assert {
    condition = !anytrue(flatten([
      for doc in [
        data.aws_iam_policy_document.task["ingest"], data.aws_iam_policy_document.task["parse"],
        data.aws_iam_policy_document.task["recast"], data.aws_iam_policy_document.scheduler,
        data.aws_iam_policy_document.stage_common["snapshot"],
      ] : [for s in doc.statement : contains(s.actions, "events:PutEvents")]
    ]))
    error_message = "no other role may put events"
  }

  assert {
    condition = (
      local.environment["snapshot"].TASCOMI_EVENT_BUS == "tascomi-events"
      && alltrue([for stage in ["ingest", "parse", "recast"] : !contains(keys(local.environment[stage]), "TASCOMI_EVENT_BUS")])
    )
    error_message = "only the snapshot task is told the bus"
  }
}

run "the_default_bus_by_default" {
  command = plan

  assert {
    condition     = local.environment["snapshot"].TASCOMI_EVENT_BUS == "default"
    error_message = "events go to the account's default bus unless another is named"
  }

  assert {
    condition = [
      for s in data.aws_iam_policy_document.task["snapshot"].statement : s.resources
      if contains(s.actions, "events:PutEvents")
    ] == [toset(["arn:aws:events:eu-west-2:123456789012:event-bus/default"])]
    error_message = "the default bus's ARN"
  }
}

run "an_event_bus_is_a_name" {
  command = plan

  variables {
    event_bus_name = "arn:aws:events:eu-west-2:123456789012:event-bus/x"
  }

  expect_failures = [var.event_bus_name]
}
