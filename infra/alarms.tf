# Alarms to an SNS topic (created here unless var.alarm_sns_topic_arn names one): a message in
# any dead-letter queue (a stage gave up on it: see the message's reason attribute and
# docs/deploy.md), and a stage queue whose oldest message waits too long (a stage is stuck,
# failing or under-scaled).

resource "aws_sns_topic" "alarms" {
  count = var.alarm_sns_topic_arn == null ? 1 : 0

  name = "${local.name}-alarms"
  # Null key: the AWS-managed aws/sns key.
  kms_master_key_id = coalesce(var.kms_key_arn, "alias/aws/sns")
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = var.alarm_sns_topic_arn == null ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarm_topic_arn = var.alarm_sns_topic_arn == null ? aws_sns_topic.alarms[0].arn : var.alarm_sns_topic_arn
}

resource "aws_cloudwatch_metric_alarm" "dead_letter_messages" {
  for_each = local.stages

  alarm_name          = "${local.name}-${each.key}-dead-letters"
  alarm_description   = "Messages in the ${each.key} dead-letter queue: ${each.value.service} gave up on them. Read their reason, fix, then `tascomi redrive --stage ${each.key}`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter[each.key].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  for_each = local.stages

  alarm_name          = "${local.name}-${each.key}-oldest-message"
  alarm_description   = "The oldest message on the ${each.key} queue has waited more than ${var.oldest_message_age_alarm_secs} s: ${each.value.service} is stuck, failing or under-scaled."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.stage[each.key].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_alarm_secs
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}
