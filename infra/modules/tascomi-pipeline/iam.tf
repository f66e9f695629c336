# Least privilege: one task role per stage, limited to its own key prefixes, queues, Glue
# tables and (ingest only) the API secret; a shared execution role that only pulls the image
# and writes the logs; a role EventBridge Scheduler uses to send the nightly requests.
#
# No Allow statement names a wildcard action (tests/infra-check checks it). Object access is
# scoped to key prefixes. s3:ListBucket is granted on the whole bucket: S3 answers a GET of a
# missing object with 404 only to a caller allowed to list the bucket without a prefix
# condition (403 otherwise), and the stages rely on "not found" (a table's first run, say).
#
# Glue access is per table (common/src/layout.rs, catalog_table): a table's raw responses are
# `api_response_<table>` (raw zone) and its increments `increment_<table>` (refined zone), which
# a name pattern confines; its parsed table (raw zone) and its snapshot (refined zone) are both
# plain `<table>`, which only the explicit list of the pipeline file's tables confines. Those
# lists are long (an ARN per table), so they go into managed policies of at most
# local.glue_tables_per_policy tables each (a role's inline policies share 10,240 characters;
# a managed policy may hold 6,144), attached to the stage's role.

locals {
  glue_arn_prefix = "arn:${local.partition}:glue:${var.aws_region}:${local.account_id}"
  # The one bus snapshot-svc announces on (var.event_bus_name).
  event_bus_arn    = "arn:${local.partition}:events:${var.aws_region}:${local.account_id}:event-bus/${var.event_bus_name}"
  glue_catalog_arn = "${local.glue_arn_prefix}:catalog"

  # The catalog and a zone's database: every Glue call on a table is authorised on all three.
  glue_zone_arns = {
    raw     = [local.glue_catalog_arn, "${local.glue_arn_prefix}:database/${local.raw_database}"]
    refined = [local.glue_catalog_arn, "${local.glue_arn_prefix}:database/${local.refined_database}"]
  }
  glue_table_arn_prefix = {
    raw     = "${local.glue_arn_prefix}:table/${local.raw_database}/"
    refined = "${local.glue_arn_prefix}:table/${local.refined_database}/"
  }

  glue_resources = {
    # A whole zone: the operator and read-only roles (operators.tf).
    raw     = concat(local.glue_zone_arns.raw, ["${local.glue_table_arn_prefix.raw}*"])
    refined = concat(local.glue_zone_arns.refined, ["${local.glue_table_arn_prefix.refined}*"])
    # The layers whose tables have a prefix.
    raw_api_responses  = concat(local.glue_zone_arns.raw, ["${local.glue_table_arn_prefix.raw}api_response_*"])
    refined_increments = concat(local.glue_zone_arns.refined, ["${local.glue_table_arn_prefix.refined}increment_*"])
  }

  # The layers whose tables are plain `<table>`: which stage reads or publishes them, by zone.
  # A stage "publishes" its own layer's tables and "reads" another's partitions (parse-svc and
  # recast-svc their input; snapshot-svc looks for holes in every earlier layer).
  pipeline_table_names = sort(keys(local.tables))
  glue_table_lists = {
    parse    = [{ access = "publish", zone = "raw" }]
    recast   = [{ access = "read", zone = "raw" }]
    snapshot = [{ access = "read", zone = "raw" }, { access = "publish", zone = "refined" }]
  }
  # Tables per managed policy: 5,500 characters of table ARNs (each quoted, with a comma) leave
  # room for the actions, the catalog and the database (about 500) within the 6,144 characters
  # of a managed policy; aws_iam_policy.glue_tables checks the result.
  glue_longest_table_arn = max(
    length(local.glue_table_arn_prefix.raw), length(local.glue_table_arn_prefix.refined),
  ) + max(0, [for table in local.pipeline_table_names : length(table)]...)
  glue_tables_per_policy = max(1, floor(5500 / (local.glue_longest_table_arn + 3)))
  glue_table_policies = merge(flatten([
    for stage, lists in local.glue_table_lists : [
      for grant in lists : {
        for index, tables in chunklist(local.pipeline_table_names, local.glue_tables_per_policy) :
        "${stage}-${grant.access}-${grant.zone}-${index}" => merge(grant, { stage = stage, part = index, tables = tables })
      }
    ]
  ])...)

  # The calls common/src/catalog/glue.rs makes. With TASCOMI_MANAGE_DATABASES=false (locals.tf)
  # a service publishing into a database only checks that it exists (GetDatabase): the module
  # creates the databases, so no task role may create one.
  glue_read_actions = ["glue:GetTable", "glue:GetPartition", "glue:GetPartitions"]
  glue_write_actions = [
    "glue:GetDatabase",
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

  # Every object under a key prefix of local.prefixes, in its zone's bucket.
  prefix_objects = {
    api_responses = "${local.raw_bucket_arn}/${local.prefixes.api_responses}*"
    parsed        = "${local.raw_bucket_arn}/${local.prefixes.parsed}*"
    ingest_state  = "${local.raw_bucket_arn}/${local.prefixes.ingest_state}*"
    increment     = "${local.refined_bucket_arn}/${local.prefixes.increment}*"
    snapshot      = "${local.refined_bucket_arn}/${local.prefixes.snapshot}*"
  }

  # What each stage's task role may do besides stage_common: list the buckets it works in (see
  # the top of this file), read its input, write its output. Its Glue grants here are the layers
  # whose tables have a prefix; the `<table>` ones are in local.glue_table_lists. Statement order
  # does not matter to IAM, nor to the provider (it compares policies as sets of statements).
  task_statements = {
    ingest = [
      { sid = "ListRawBucket", actions = ["s3:ListBucket"], resources = [local.raw_bucket_arn] },
      { sid = "ReadApiKeys", actions = ["secretsmanager:GetSecretValue"], resources = [var.tascomi_api_secret_arn] },
      { sid = "WriteApiResponsesAndState", actions = local.s3_write_actions, resources = [local.prefix_objects.api_responses, local.prefix_objects.ingest_state] },
      { sid = "PublishApiResponseTables", actions = local.glue_write_actions, resources = local.glue_resources.raw_api_responses },
    ]
    parse = [
      { sid = "ListBuckets", actions = ["s3:ListBucket"], resources = [local.raw_bucket_arn, local.refined_bucket_arn] },
      { sid = "ReadApiResponses", actions = local.s3_read_actions, resources = [local.prefix_objects.api_responses] },
      { sid = "ReadApiResponseTables", actions = local.glue_read_actions, resources = local.glue_resources.raw_api_responses },
      { sid = "WriteParsed", actions = local.s3_write_actions, resources = [local.prefix_objects.parsed] },
      { sid = "RecordDataQuality", actions = ["s3:PutObject"], resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}parse/*"] },
    ]
    recast = [
      { sid = "ListBuckets", actions = ["s3:ListBucket"], resources = [local.raw_bucket_arn, local.refined_bucket_arn] },
      { sid = "ReadParsed", actions = local.s3_read_actions, resources = [local.prefix_objects.parsed] },
      { sid = "WriteIncrement", actions = local.s3_write_actions, resources = [local.prefix_objects.increment] },
      { sid = "PublishIncrementTables", actions = local.glue_write_actions, resources = local.glue_resources.refined_increments },
      { sid = "RecordDataQuality", actions = ["s3:PutObject"], resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}recast/*"] },
    ]
    # The snapshot checks that every import since its base reached the increments (a hole is
    # refused): it reads the partitions of the raw, parsed and increment tables. After each
    # publication it announces "Tascomi snapshot published" on the one bus named.
    snapshot = [
      { sid = "ListRefinedBucket", actions = ["s3:ListBucket"], resources = [local.refined_bucket_arn] },
      { sid = "ReadIncrement", actions = local.s3_read_actions, resources = [local.prefix_objects.increment] },
      { sid = "ReadApiResponseTables", actions = local.glue_read_actions, resources = local.glue_resources.raw_api_responses },
      { sid = "ReadIncrementTables", actions = local.glue_read_actions, resources = local.glue_resources.refined_increments },
      { sid = "WriteSnapshot", actions = local.s3_write_actions, resources = [local.prefix_objects.snapshot] },
      { sid = "RecordDataQuality", actions = ["s3:PutObject"], resources = ["${local.refined_bucket_arn}/${local.prefixes.data_quality}snapshot/*"] },
      { sid = "AnnounceSnapshots", actions = ["events:PutEvents"], resources = [local.event_bus_arn] },
    ]
  }

  # The AWS services that assume the module's roles (chat.tf: chatbot, events), from this
  # account only.
  service_principals = {
    ecs_tasks = "ecs-tasks.amazonaws.com"
    scheduler = "scheduler.amazonaws.com"
    chatbot   = "chatbot.amazonaws.com"
    events    = "events.amazonaws.com"
  }
}

# Who may assume each service role: that AWS service (local.service_principals), for this account.
data "aws_iam_policy_document" "assume" {
  for_each = local.service_principals

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = [each.value]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- Task roles ---------------------------------------------------------------------------------

resource "aws_iam_role" "task" {
  for_each = local.stages

  name               = "${local.name}-${each.key}-task"
  description        = "Task role of ${each.value.service}"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs_tasks"].json
}

resource "aws_iam_role_policy" "task" {
  for_each = local.stages

  name   = "${each.value.service}-least-privilege"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.task[each.key].json

  lifecycle {
    precondition {
      condition     = alltrue([for table in local.pipeline_table_names : !startswith(table, "api_response_") && !startswith(table, "increment_")])
      error_message = "A table of the pipeline file is named api_response_* or increment_*: its Glue tables would clash with another table's raw or increment table, and the task roles' name patterns would reach them."
    }
  }
}

# The Glue tables named `<table>` (see the top of this file), a part of the pipeline's tables per
# policy.
data "aws_iam_policy_document" "glue_tables" {
  for_each = local.glue_table_policies

  statement {
    sid     = each.value.access == "read" ? "ReadTables" : "PublishTables"
    actions = each.value.access == "read" ? local.glue_read_actions : local.glue_write_actions
    resources = concat(
      local.glue_zone_arns[each.value.zone],
      [for table in each.value.tables : "${local.glue_table_arn_prefix[each.value.zone]}${table}"],
    )
  }
}

resource "aws_iam_policy" "glue_tables" {
  for_each = local.glue_table_policies

  name        = "${local.name}-${each.key}-glue-tables"
  description = "${local.stages[each.value.stage].service}: ${each.value.access} the pipeline's tables in the ${each.value.zone} zone's Glue database (part ${each.value.part + 1})"
  policy      = data.aws_iam_policy_document.glue_tables[each.key].json

  lifecycle {
    precondition {
      condition     = length(data.aws_iam_policy_document.glue_tables[each.key].minified_json) <= 6144
      error_message = "The policy exceeds the 6,144 characters of a managed policy: lower local.glue_tables_per_policy."
    }
  }
}

resource "aws_iam_role_policy_attachment" "glue_tables" {
  for_each = local.glue_table_policies

  role       = aws_iam_role.task[each.value.stage].name
  policy_arn = aws_iam_policy.glue_tables[each.key].arn
}

# AWS attaches at most 10 managed policies to a role unless the quota is raised (to 20).
check "managed_policies_per_task_role" {
  assert {
    condition = alltrue([
      for stage in keys(local.stages) : length([for policy in local.glue_table_policies : policy if policy.stage == stage]) <= 10
    ])
    error_message = "A task role would get more than 10 managed Glue policies (the pipeline file has many tables): raise the IAM quota \"Managed policies per role\" before applying."
  }
}

# The deployment's key (var.kms_key_arn), if any, encrypts the buckets and queues: the roles that
# read or write them use it (stage_common, the scheduler's).
data "aws_iam_policy_document" "use_data_key" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# What every stage does with queues: consume its own, send to the next stage's and to its own
# dead-letter queue (permanent failures, with their reason); and use the data key, if any.
data "aws_iam_policy_document" "stage_common" {
  for_each = local.stages

  source_policy_documents = data.aws_iam_policy_document.use_data_key[*].json

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

  # The column-type dictionary (dictionary.tf), read at start-up: that one object only.
  statement {
    sid       = "ReadColumnTypeDictionary"
    actions   = ["s3:GetObject"]
    resources = [local.column_type_dictionary_arn]
  }

  # The trace collector beside the service (traces.tf). X-Ray has no resource-level
  # permissions for these actions: they take "*".
  dynamic "statement" {
    for_each = var.enable_trace_collector ? ["xray"] : []
    content {
      sid       = "SendTracesToXRay"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

# A stage's task policy: stage_common, then its own statements (local.task_statements).
data "aws_iam_policy_document" "task" {
  for_each = local.stages

  source_policy_documents = [data.aws_iam_policy_document.stage_common[each.key].json]

  dynamic "statement" {
    for_each = local.task_statements[each.key]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  # The API secret's own key, if it has one: ingest-svc decrypts through Secrets Manager only.
  dynamic "statement" {
    for_each = each.key == "ingest" && var.tascomi_api_secret_kms_key_arn != null ? [var.tascomi_api_secret_kms_key_arn] : []
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

# --- Execution role (shared): pull the image, write the logs -------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  description        = "ECS task execution role of the Tascomi pipeline services"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs_tasks"].json
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

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  description        = "EventBridge Scheduler: sends the nightly ingest and carry-forward requests"
  assume_role_policy = data.aws_iam_policy_document.assume["scheduler"].json
}

data "aws_iam_policy_document" "scheduler" {
  source_policy_documents = data.aws_iam_policy_document.use_data_key[*].json

  # The ingest queue, and its dead-letter queue for a request Scheduler could not deliver.
  statement {
    sid       = "SendIngestRequests"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stage["ingest"].arn, aws_sqs_queue.dead_letter["ingest"].arn]
  }

  # The snapshot queue, and its dead-letter queue: carry-forward requests (schedule.tf).
  statement {
    sid       = "SendCarryForwardRequests"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stage["snapshot"].arn, aws_sqs_queue.dead_letter["snapshot"].arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "send-ingest-requests"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
