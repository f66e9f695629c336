# One queue per stage, each with its dead-letter queue. A message that fails
# var.max_receive_count times moves to the dead-letter queue; the services also send a permanent
# failure there at once, with its reason (common/src/runner.rs). `tascomi redrive` sends them back.
#
# Names: <name_prefix>-<environment>-<stage> and <name_prefix>-<environment>-<stage>-dlq
# (docker-compose.yml and deploy/compose/init.sh use the same pattern).

resource "aws_sqs_queue" "dead_letter" {
  for_each = local.stages

  name                      = "${local.name}-${each.key}-dlq"
  message_retention_seconds = var.dead_letter_retention_secs

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
}

resource "aws_sqs_queue" "stage" {
  for_each = local.stages

  name = "${local.name}-${each.key}"
  # The lease a received message gets; the services renew it at half-time while they work.
  visibility_timeout_seconds = local.stage_settings[each.key].visibility_timeout_secs
  message_retention_seconds  = var.message_retention_secs
  receive_wait_time_seconds  = 20

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600

  lifecycle {
    precondition {
      condition     = local.stage_settings[each.key].visibility_timeout_secs >= 60 && local.stage_settings[each.key].visibility_timeout_secs <= 43200
      error_message = "stages.${each.key}.visibility_timeout_secs must be between 60 and 43200 (the SQS maximum)."
    }
  }
}

# Only the stage's own queue may move messages into its dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each = local.stages

  queue_url = aws_sqs_queue.dead_letter[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.stage[each.key].arn]
  })
}
