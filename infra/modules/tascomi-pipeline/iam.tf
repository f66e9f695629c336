# Least privilege: one task role per stage, limited to its own key prefixes, queues, Glue
# databases and (ingest only) the API secret; a shared execution role that only pulls the image
# and writes the logs; a role EventBridge Scheduler uses to send the nightly requests.
#
# No Allow statement names a wildcard action (tests/infra-check checks it). Object access is
# scoped to key prefixes. s3:ListBucket is granted on the whole bucket: S3 answers a GET of a
# missing object with 404 only to a caller allowed to list the bucket without a prefix
# condition (403 otherwise), and the stages rely on "not found" (a table's first run, say).

locals {
  glue_arn_prefix  = "arn:${local.partition}:glue:${var.aws_region}:${local.account_id}"
  glue_catalog_arn = "${local.glue_arn_prefix}:catalog"

  # Everything a stage needs to read or write one Glue database and its tables and partitions.
  glue_resources = {
    raw = [
      local.glue_catalog_arn,
      "${local.glue_arn_prefix}:database/${local.raw_database}",
      "${local.glue_arn_prefix}:table/${local.raw_database}/*",
    ]
    refined = [
      local.glue_catalog_arn,
      "${local.glue_arn_prefix}:database/${local.refined_database}",
      "${local.glue_arn_prefix}:table/${local.refined_database}/*",
    ]
  }

  # The calls common/src/catalog/glue.rs makes. CreateDatabase is there because the services
  # ensure their database exists (an existing one is left alone).
  glue_read_actions = ["glue:GetTable", "glue:GetPartition", "glue:GetPartitions"]
  glue_write_actions = [
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:CreatePartition",
    "glue:UpdatePartition",
    "glue:DeletePartition",
  ]

  # The calls common/src/storage/s3.rs makes on objects. Writing includes removing an earlier
  # run's files and aborting an interrupted multipart upload.
  s3_read_actions  = ["s3:GetObject"]
  s3_write_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]

  task_policies = {
    ingest   = data.aws_iam_policy_document.ingest.json
    parse    = data.aws_iam_policy_document.parse.json
    recast   = data.aws_iam_policy_document.recast.json
    snapshot = data.aws_iam_policy_document.snapshot.json
  }
}

# --- Task roles ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each = local.stages

  name               = "${local.name}-${each.key}-task"
  description        = "Task role of ${each.value.service}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task" {
  for_each = local.stages

  name   = "${each.value.service}-least-privilege"
  role   = aws_iam_role.task[each.key].id
  policy = local.task_policies[each.key]
}

# What every stage does with queues: consume its own, send to the next stage's and to its own
# dead-letter queue (permanent failures, with their reason); and use the data key, if any.
data "aws_iam_policy_document" "stage_common" {
  for_each = local.stages

  statement {
    sid = "ConsumeOwnQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.stage[each.key].arn]
  }

  statement {
    sid     = "SendToNextStageAndDeadLetterQueue"
    actions = ["sqs:SendMessage"]
    resources = concat(
      [aws_sqs_queue.dead_letter[each.key].arn],
      each.value.next == null ? [] : [aws_sqs_queue.stage[each.value.next].arn],
    )
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseDataKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "ingest" {
  source_policy_documents = [data.aws_iam_policy_document.stage_common["ingest"].json]

  statement {
    sid       = "ListRawBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.raw_bucket_arn]
  }

  statement {
    sid     = "WriteApiResponsesAndState"
    actions = local.s3_write_actions
    resources = [
      "${local.raw_bucket_arn}/${local.prefixes.api_responses}*",
      "${local.raw_bucket_arn}/${local.prefixes.ingest_state}*",
    ]
  }

  statement {
    sid       = "PublishRawTables"
    actions   = local.glue_write_actions
    resources = local.glue_resources.raw
  }

  statement {
    sid       = "ReadApiKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.tascomi_api_secret_arn]
  }

  dynamic "statement" {
    for_each = var.tascomi_api_secret_kms_key_arn == null ? [] : [var.tascomi_api_secret_kms_key_arn]
    content {
      sid       = "DecryptApiKeys"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "parse" {
  source_policy_documents = [data.aws_iam_policy_document.stage_common["parse"].json]

  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [local.raw_bucket_arn, local.refined_bucket_arn]
  }

  statement {
    sid       = "ReadApiResponses"
    actions   = local.s3_read_actions
    resources = ["${local.raw_bucket_arn}/${local.prefixes.api_responses}*"]
  }

  statement {
    sid       = "WriteParsed"
    actions   = local.s3_write_actions
    resources = ["${local.raw_bucket_arn}/${local.prefixes.parsed}*"]
  }

  statement {
    sid       = "RecordDataQuality"
    actions   = ["s3:PutObject"]
    resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}parse/*"]
  }

  statement {
    sid       = "PublishParsedTables"
    actions   = local.glue_write_actions
    resources = local.glue_resources.raw
  }
}

data "aws_iam_policy_document" "recast" {
  source_policy_documents = [data.aws_iam_policy_document.stage_common["recast"].json]

  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [local.raw_bucket_arn, local.refined_bucket_arn]
  }

  statement {
    sid       = "ReadParsed"
    actions   = local.s3_read_actions
    resources = ["${local.raw_bucket_arn}/${local.prefixes.parsed}*"]
  }

  statement {
    sid       = "WriteIncrement"
    actions   = local.s3_write_actions
    resources = ["${local.refined_bucket_arn}/${local.prefixes.increment}*"]
  }

  statement {
    sid       = "RecordDataQuality"
    actions   = ["s3:PutObject"]
    resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}recast/*"]
  }

  statement {
    sid       = "ReadParsedTables"
    actions   = local.glue_read_actions
    resources = local.glue_resources.raw
  }

  statement {
    sid       = "PublishIncrementTables"
    actions   = local.glue_write_actions
    resources = local.glue_resources.refined
  }
}

data "aws_iam_policy_document" "snapshot" {
  source_policy_documents = [data.aws_iam_policy_document.stage_common["snapshot"].json]

  statement {
    sid       = "ListRefinedBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.refined_bucket_arn]
  }

  statement {
    sid       = "ReadIncrement"
    actions   = local.s3_read_actions
    resources = ["${local.refined_bucket_arn}/${local.prefixes.increment}*"]
  }

  statement {
    sid       = "WriteSnapshot"
    actions   = local.s3_write_actions
    resources = ["${local.refined_bucket_arn}/${local.prefixes.snapshot}*"]
  }

  statement {
    sid       = "RecordDataQuality"
    actions   = ["s3:PutObject"]
    resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}snapshot/*"]
  }

  statement {
    sid       = "PublishSnapshotTables"
    actions   = local.glue_write_actions
    resources = local.glue_resources.refined
  }
}

# --- Execution role (shared): pull the image, write the logs -------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  description        = "ECS task execution role of the Tascomi pipeline services"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.stage : "${group.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]
    content {
      sid       = "PullImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
      resources = [statement.value]
    }
  }

  # ECR issues registry tokens per account, not per repository: this action takes no resource.
  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]
    content {
      sid       = "GetRegistryToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-and-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- EventBridge Scheduler ----------------------------------------------------------------------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  description        = "EventBridge Scheduler: sends the nightly ingest requests"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  # The ingest queue, and its dead-letter queue for a request Scheduler could not deliver.
  statement {
    sid       = "SendIngestRequests"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stage["ingest"].arn, aws_sqs_queue.dead_letter["ingest"].arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseDataKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "send-ingest-requests"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
