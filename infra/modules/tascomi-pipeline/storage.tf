# The data lake: the raw and refined buckets (created here, or existing ones) and the Glue
# databases Athena queries. The services create and update the tables and partitions themselves.

locals {
  # Only the buckets this configuration creates; existing ones are named by variables.
  created_buckets = var.create_buckets ? {
    raw     = coalesce(var.raw_bucket_name, "${local.name}-raw-zone-${local.account_id}")
    refined = coalesce(var.refined_bucket_name, "${local.name}-refined-zone-${local.account_id}")
  } : {}
}

resource "aws_s3_bucket" "zone" {
  #checkov:skip=CKV2_AWS_62:The stages are driven by their queues' messages, not by S3 events.
  #checkov:skip=CKV_AWS_144:Cross-region replication is the council's disaster-recovery choice; the raw zone can be re-fetched from the API.
  for_each = local.created_buckets

  bucket        = each.value
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket_public_access_block" "zone" {
  for_each = aws_s3_bucket.zone

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "zone" {
  for_each = aws_s3_bucket.zone

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "zone" {
  for_each = aws_s3_bucket.zone

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
      # Null: the AWS-managed aws/s3 key.
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

# Removing this resource (bucket_versioning = false) suspends versioning.
resource "aws_s3_bucket_versioning" "zone" {
  for_each = var.bucket_versioning ? aws_s3_bucket.zone : {}

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_logging" "zone" {
  for_each = var.access_log_bucket == null ? {} : aws_s3_bucket.zone

  bucket        = each.value.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${each.value.id}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "zone" {
  for_each = aws_s3_bucket.zone

  bucket = each.value.id

  # A stage killed mid-write leaves a multipart upload behind; its parts cost storage until aborted.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = var.bucket_versioning ? "Enabled" : "Disabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  # Raw API responses (personal data, kept only to re-parse): `tascomi reset --stage parse` can go
  # back as far as this keeps.
  dynamic "rule" {
    for_each = each.key == "raw" && var.raw_response_retention_days != null ? [var.raw_response_retention_days] : []
    content {
      id     = "expire-old-api-responses"
      status = "Enabled"
      filter {
        prefix = local.prefixes.api_responses
      }
      expiration {
        days = rule.value
      }
    }
  }

  # Athena query results (athena.tf).
  dynamic "rule" {
    for_each = each.key == "refined" ? [var.athena_results_retention_days] : []
    content {
      id     = "expire-athena-results"
      status = "Enabled"
      filter {
        prefix = local.athena_results_prefix
      }
      expiration {
        days = rule.value
      }
    }
  }

  # Old daily snapshots (each is a full copy of its table). Their Glue partitions stay listed
  # but read as empty; `tascomi rollback` can only go back as far as this keeps.
  dynamic "rule" {
    for_each = each.key == "refined" && var.snapshot_retention_days != null ? [var.snapshot_retention_days] : []
    content {
      id     = "expire-old-snapshots"
      status = "Enabled"
      filter {
        prefix = local.prefixes.snapshot
      }
      expiration {
        days = rule.value
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.zone]
}

# TLS only. A Deny on every action is the point of this statement, so it is the one place an
# action wildcard appears (tests/infra-check allows wildcards in Deny statements only).
data "aws_iam_policy_document" "bucket_tls_only" {
  for_each = aws_s3_bucket.zone

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "zone" {
  for_each = aws_s3_bucket.zone

  bucket = each.value.id
  policy = data.aws_iam_policy_document.bucket_tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.zone]
}

resource "aws_glue_catalog_database" "zone" {
  for_each = var.create_glue_databases ? {
    raw     = local.raw_database
    refined = local.refined_database
  } : {}

  name        = each.value
  description = "Tascomi planning data, ${each.key} zone (${local.name}); tables are created by the pipeline's services."
}
