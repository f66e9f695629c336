# Alarms that reach people: an SNS topic (created here unless var.alarm_sns_topic_arn names one)
# encrypted with a customer-managed KMS key whose policy lets CloudWatch alarms and EventBridge
# publish to it (a topic under the AWS-managed aws/sns key silently drops CloudWatch alarms),
# email subscriptions, and an optional chat channel (chat.tf).
#
# What raises an alarm:
#   - a message in any dead-letter queue (a stage gave up on it: see its reason attribute);
#   - a stage queue whose oldest message waits too long (a stage is stuck, failing or under-scaled);
#   - a table whose snapshot is older than its schedule allows (SnapshotAgeHours, snapshot-svc);
#   - ingest: pages that failed, lookback days cut (EMF metrics, rolled up by metric filters);
#   - a task stopping with a non-zero exit or failing to start, a service whose tasks keep failing
#     to start, a deployment that failed (EventBridge rules on ECS events);
#   - a schedule whose request could not be delivered (EventBridge Scheduler metrics).

locals {
  create_alarm_topic = var.alarm_sns_topic_arn == null
  # The topic's key: the deployment's key when given (its policy must then allow CloudWatch and
  # EventBridge, see docs/deploy.md), else a key made for the topic.
  create_alarm_key = local.create_alarm_topic && var.kms_key_arn == null
  alarm_topic_arn  = local.create_alarm_topic ? aws_sns_topic.alarms[0].arn : var.alarm_sns_topic_arn
  alarm_topic_name = "${local.name}-alarms"

  # EventBridge and CloudWatch alarms encrypt with the topic's key on publishing.
  alarm_publishers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
}

# What CloudWatch alarms and EventBridge rules of this account may do: encrypt with the topic's
# key (its policy) and publish to the topic (the topic's policy: EventBridge needs this statement,
# CloudWatch alarms of the account would not). The topic is named, not referred to: the topic
# depends on its key, hence on this document.
data "aws_iam_policy_document" "alarm_publishers" {
  for_each = {
    key   = { sid = "AlarmsAndEventBridgePublishToTheTopic", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resource = "*" }
    topic = { sid = "AlarmsAndEventBridgePublish", actions = ["sns:Publish"], resource = "arn:${local.partition}:sns:${var.aws_region}:${local.account_id}:${local.alarm_topic_name}" }
  }

  statement {
    sid       = each.value.sid
    actions   = each.value.actions
    resources = [each.value.resource]

    principals {
      type        = "Service"
      identifiers = local.alarm_publishers
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- The topic's key ------------------------------------------------------------------------------

resource "aws_kms_key" "alarms" {
  count = local.create_alarm_key ? 1 : 0

  description             = "${local.name}: alarm topic (CloudWatch alarms and EventBridge publish with it)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.alarm_key[0].json
}

resource "aws_kms_alias" "alarms" {
  count = local.create_alarm_key ? 1 : 0

  name          = "alias/${local.name}-alarms"
  target_key_id = aws_kms_key.alarms[0].key_id
}

# In a key policy, resource "*" means this key. The account statement lists the actions rather
# than kms:* (tests/infra-check refuses wildcard actions); it keeps the key manageable through IAM.
data "aws_iam_policy_document" "alarm_key" {
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" is the key itself; writes are the account's (through IAM) and the two publishing services'.
  #checkov:skip=CKV_AWS_356:A key policy's resource "*" is the key itself, not every resource.
  count = local.create_alarm_key ? 1 : 0

  source_policy_documents = [data.aws_iam_policy_document.alarm_publishers["key"].json]

  statement {
    sid       = "AccountAdministersTheKey"
    actions   = local.kms_key_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

locals {
  kms_key_admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]
}

# --- The topic ------------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name              = local.alarm_topic_name
  kms_master_key_id = local.create_alarm_key ? aws_kms_key.alarms[0].arn : var.kms_key_arn
}

# Who may publish: the account's principals, CloudWatch alarms and EventBridge rules of this
# account (alarm_publishers).
data "aws_iam_policy_document" "alarm_topic" {
  count = local.create_alarm_topic ? 1 : 0

  source_policy_documents = [data.aws_iam_policy_document.alarm_publishers["topic"].json]

  statement {
    sid = "AccountManagesTheTopic"
    actions = [
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms[0].arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarm_topic[0].json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = local.create_alarm_topic ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Queues ---------------------------------------------------------------------------------------

locals {
  # Each stage's two queue alarms, by name after <name>-: a message in its dead-letter queue (the
  # stage gave up on it: one is too many) and a stage queue whose oldest message waits too long.
  queue_alarms = merge([
    for stage, def in local.stages : {
      "${stage}-dead-letters" = {
        description = "Messages in the ${stage} dead-letter queue: ${def.service} gave up on them. Read their reason, fix, then `tascomi redrive --stage ${stage}`."
        metric      = "ApproximateNumberOfMessagesVisible"
        queue       = aws_sqs_queue.dead_letter[stage].name
        threshold   = 0
      }
      "${stage}-oldest-message" = {
        description = "The oldest message on the ${stage} queue has waited more than ${var.oldest_message_age_alarm_secs} s: ${def.service} is stuck, failing or under-scaled."
        metric      = "ApproximateAgeOfOldestMessage"
        queue       = aws_sqs_queue.stage[stage].name
        threshold   = var.oldest_message_age_alarm_secs
      }
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "queue" {
  for_each = local.queue_alarms

  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/SQS"
  metric_name         = each.value.metric
  dimensions          = { QueueName = each.value.queue }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

# --- Data freshness, per table ----------------------------------------------------------------------

locals {
  # Hours a table's latest snapshot may reach before it is stale: its schedule's interval plus
  # var.freshness_grace_hours (the night's run time).
  freshness_hours = {
    for table, schedule in local.tables : table => (schedule == "weekly" ? 168 : 24) + var.freshness_grace_hours
  }
}

# snapshot-svc reports SnapshotAgeHours (namespace Tascomi, dimension Table) when it runs. The
# alarm fires when no report within the table's allowance was under it: a stale report and no
# report at all (nothing ran) both count, as missing hours are breaching. CloudWatch evaluates at
# most 7 days of hourly periods, so a weekly table's silence is judged over 168 hours.
resource "aws_cloudwatch_metric_alarm" "snapshot_freshness" {
  for_each = local.tables

  alarm_name          = "${local.name}-${each.key}-snapshot-stale"
  alarm_description   = "The ${each.key} snapshot (${each.value}) is older than ${local.freshness_hours[each.key]} hours, or snapshot-svc has not reported it: see `tascomi status` (STALE) and the night's dead letters."
  namespace           = "Tascomi"
  metric_name         = "SnapshotAgeHours"
  dimensions          = { Table = each.key }
  statistic           = "Minimum"
  period              = 3600
  evaluation_periods  = min(local.freshness_hours[each.key], 168)
  datapoints_to_alarm = min(local.freshness_hours[each.key], 168)
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.freshness_hours[each.key]
  treat_missing_data  = "breaching"
  # Paused schedules (the first full load, a pause) make every snapshot stale by design.
  actions_enabled = var.schedules_enabled
  alarm_actions   = [local.alarm_topic_arn]
  ok_actions      = [local.alarm_topic_arn]
}

# --- Ingest: what the "nothing lost" counters report --------------------------------------------------

locals {
  # EMF metrics of ingest-svc (common/src/metrics.rs; dimensions Stage and Table), rolled up over
  # every table by a metric filter into the namespace Tascomi/<name>, one alarm each.
  ingest_alarm_metrics = {
    FailedPages = "pages of a table could not be fetched: `tascomi ingest --table T --mode retry-failed` fetches them (docs/operations.md)"
    DaysCut     = "the lookback cap (max_lookback_days) cut days from an incremental ingest: run `tascomi ingest --table T --since DATE` for the days cut"
  }
  # Counted on the dashboard, no alarm.
  ingest_dashboard_metrics = ["Requeries", "RecordsRecoveredByRequery", "FutureDatedRecords", "RecordsWritten"]
  parse_dashboard_metrics  = ["DuplicateRecordsCollapsed", "SupersededVersionsDropped"]
  rollup_namespace         = "Tascomi/${local.name}"
}

resource "aws_cloudwatch_log_metric_filter" "ingest" {
  for_each = local.ingest_alarm_metrics

  name           = "${local.name}-ingest-${each.key}"
  log_group_name = aws_cloudwatch_log_group.stage["ingest"].name
  pattern        = "{ $.Stage = \"ingest\" && $.${each.key} >= 0 }"

  metric_transformation {
    namespace = local.rollup_namespace
    name      = each.key
    value     = "$.${each.key}"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "ingest" {
  for_each = local.ingest_alarm_metrics

  alarm_name          = "${local.name}-ingest-${each.key}"
  alarm_description   = "Ingest ${each.key} > 0 on some table: ${each.value}. The table is in the ingest-svc log (`metrics` events) and on the dashboard."
  namespace           = local.rollup_namespace
  metric_name         = each.key
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]

  depends_on = [aws_cloudwatch_log_metric_filter.ingest]
}

# --- Tasks and schedules ------------------------------------------------------------------------------

locals {
  # ECS events that reach the topic, by rule name after <name>-: each an EventBridge rule and a
  # target that turns the event into a line of text (unless `notify` is false).
  ecs_events = {
    # A task that stopped with a non-zero exit (a crash, an out-of-memory kill) or never started
    # (the image cannot be pulled, the secret cannot be read). Scaling in stops tasks with exit 0.
    task-failed = {
      description = "A Tascomi pipeline task stopped with a non-zero exit or failed to start"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Task State Change"]
        detail = {
          clusterArn = [aws_ecs_cluster.pipeline.arn]
          lastStatus = ["STOPPED"]
          "$or" = [
            { containers = { exitCode = [{ "anything-but" = 0 }] } },
            { stopCode = ["TaskFailedToStart"] },
          ]
        }
      }
      notify = var.notify_failed_tasks
      input_paths = {
        group  = "$.detail.group"
        task   = "$.detail.taskArn"
        exit   = "$.detail.containers[0].exitCode"
        reason = "$.detail.stoppedReason"
        code   = "$.detail.stopCode"
      }
      input_template = "\"${local.name}: task <task> of <group> stopped (<code>), exit code <exit>: <reason>. Logs: /ecs/${local.name}/.\""
    }
    # ECS's own verdicts: a service whose tasks keep failing to start (crash loop, throttled
    # restarts) and a deployment the circuit breaker rolled back.
    service-impaired = {
      description = "A Tascomi pipeline service cannot keep its tasks running, or a deployment failed"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Service Action", "ECS Deployment State Change"]
        resources     = [{ prefix = "arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:service/${local.name}/" }]
        detail = {
          eventName = ["SERVICE_TASK_START_IMPAIRED", "SERVICE_DEPLOYMENT_FAILED"]
        }
      }
      notify = true
      input_paths = {
        service = "$.resources[0]"
        event   = "$.detail.eventName"
        reason  = "$.detail.reason"
      }
      input_template = "\"${local.name}: <event> on <service>: <reason>. ECS keeps retrying; see the service's events and its log group.\""
    }
  }
}

resource "aws_cloudwatch_event_rule" "ecs" {
  for_each = local.ecs_events

  name          = "${local.name}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "ecs" {
  for_each = { for name, event in local.ecs_events : name => event if event.notify }

  rule      = aws_cloudwatch_event_rule.ecs[each.key].name
  target_id = "alarm-topic"
  arn       = local.alarm_topic_arn

  input_transformer {
    input_paths    = each.value.input_paths
    input_template = each.value.input_template
  }
}

# EventBridge Scheduler reports failed deliveries as metrics of the schedule group (it sends no
# events): a request it could not deliver after its retries went to the ingest dead-letter queue
# (alarmed above); these catch errors before that, and requests dropped without a dead letter.
resource "aws_cloudwatch_metric_alarm" "scheduler" {
  for_each = {
    TargetErrorCount       = "EventBridge Scheduler could not send a night's ingest request (the queue, its key or the scheduler role)"
    InvocationDroppedCount = "EventBridge Scheduler dropped a night's ingest request after its retries"
  }

  alarm_name          = "${local.name}-scheduler-${each.key}"
  alarm_description   = "${each.value}: check the ingest dead-letter queue and `aws scheduler get-schedule --group-name ${aws_scheduler_schedule_group.ingest.name}`."
  namespace           = "AWS/Scheduler"
  metric_name         = each.key
  dimensions          = { ScheduleGroup = aws_scheduler_schedule_group.ingest.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
}
