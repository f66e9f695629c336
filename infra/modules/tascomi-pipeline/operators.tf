# Roles for people and their tools, used with the `tascomi` command (ctl/):
#   - operator: every operator command (ingest, backfill, replay, reset, rollback, redrive,
#     status, drift): send to any stage queue; read, redrive and delete dead letters; read and
#     delete published partitions (files and catalog entries); read everything the stages write.
#     It never writes data files: a replay or reset asks the stages to republish.
#   - read-only: `tascomi status` and `tascomi drift`: queue depths, a peek at dead letters
#     (received and made visible again at once; no delete), the catalog and the files' metadata.
# Who may assume each: var.operator_principal_arns / var.read_only_principal_arns (SSO roles,
# a CI role), or, when empty, any principal of this account its own IAM allows (the account
# root as principal delegates the decision to IAM).

locals {
  account_root = "arn:${local.partition}:iam::${local.account_id}:root"
  # Every layer's data prefixes, in their buckets.
  layer_objects = [for layer in ["api_responses", "parsed", "increment", "snapshot"] : local.prefix_objects[layer]]
  operator_readable_objects = concat(local.layer_objects, [
    local.prefix_objects.ingest_state,
    "${local.refined_bucket_arn}/${local.prefixes.data_quality}*",
    # `tascomi drift` compares the data with the dictionary (dictionary.tf).
    local.column_type_dictionary_arn,
  ])
  all_glue_resources = distinct(concat(local.glue_resources.raw, local.glue_resources.refined))
  all_queue_arns = concat(
    [for queue in aws_sqs_queue.stage : queue.arn],
    [for queue in aws_sqs_queue.dead_letter : queue.arn],
  )
  dead_letter_arns = [for queue in aws_sqs_queue.dead_letter : queue.arn]

  # The two roles, by the key people_assume and the outputs use.
  people_roles = {
    operator = {
      name        = "operator"
      description = "Operators of the Tascomi pipeline: the tascomi command (replay, reset, rollback, redrive, ingest, status)"
      principals  = var.operator_principal_arns
      policy      = data.aws_iam_policy_document.operator.json
    }
    read_only = {
      name        = "read-only"
      description = "Read-only view of the Tascomi pipeline: tascomi status and drift"
      principals  = var.read_only_principal_arns
      policy      = data.aws_iam_policy_document.read_only.json
    }
  }
}

resource "aws_iam_role" "people" {
  for_each = local.people_roles

  name                 = "${local.name}-${each.value.name}"
  description          = each.value.description
  assume_role_policy   = data.aws_iam_policy_document.people_assume[each.key].json
  max_session_duration = 14400
}

resource "aws_iam_role_policy" "people" {
  for_each = local.people_roles

  name   = "tascomi-${each.value.name}"
  role   = aws_iam_role.people[each.key].id
  policy = each.value.policy
}

data "aws_iam_policy_document" "people_assume" {
  for_each = local.people_roles

  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "AWS"
      identifiers = length(each.value.principals) > 0 ? each.value.principals : [local.account_root]
    }
  }
}

data "aws_iam_policy_document" "read_only" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [local.raw_bucket_arn, local.refined_bucket_arn]
  }

  statement {
    sid       = "ReadPipelineObjects"
    actions   = ["s3:GetObject"]
    resources = local.operator_readable_objects
  }

  statement {
    sid       = "ReadCatalog"
    actions   = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions"]
    resources = local.all_glue_resources
  }

  statement {
    sid       = "QueueDepths"
    actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = local.all_queue_arns
  }

  # `tascomi status` shows the reasons of a few dead letters: received, then made visible again.
  statement {
    sid       = "PeekDeadLetters"
    actions   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"]
    resources = local.dead_letter_arns
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "ReadEncryptedData"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "operator" {
  source_policy_documents = [data.aws_iam_policy_document.read_only.json]

  # ingest, replay, reset, rollback and redrive send work to a stage.
  statement {
    sid       = "SendWork"
    actions   = ["sqs:SendMessage"]
    resources = [for queue in aws_sqs_queue.stage : queue.arn]
  }

  # redrive: take each dead letter and send it back (its own queue), then delete it.
  statement {
    sid       = "RedriveDeadLetters"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    resources = local.dead_letter_arns
  }

  # reset and rollback: unpublish a partition, then delete its files; the stages republish.
  statement {
    sid       = "UnpublishPartitions"
    actions   = ["glue:DeletePartition", "glue:BatchDeletePartition"]
    resources = local.all_glue_resources
  }

  # adopt registers a Glue-written lake's partitions (and a table the crawlers did not make);
  # retype sets a column's type in place (a dropped table would lose its Lake Formation grants).
  statement {
    sid       = "AdoptAndRetype"
    actions   = ["glue:CreateTable", "glue:UpdateTable", "glue:CreatePartition", "glue:UpdatePartition"]
    resources = local.all_glue_resources
  }

  # adopt writes each table's ingest state, derived from its raw layer.
  statement {
    sid       = "WriteIngestState"
    actions   = ["s3:PutObject"]
    resources = ["${local.raw_bucket_arn}/${local.prefixes.ingest_state}*"]
  }

  statement {
    sid       = "RemovePartitionFiles"
    actions   = ["s3:DeleteObject"]
    resources = local.layer_objects
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "SendEncryptedMessages"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}
