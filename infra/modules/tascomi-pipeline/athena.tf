# An Athena workgroup for the pipeline's databases: results encrypted in the refined bucket
# (expired after var.athena_results_retention_days, storage.tf), a per-query scan limit, the
# settings enforced on every query of the workgroup, and CloudWatch metrics.

locals {
  athena_results_prefix = "athena-results/"
}

resource "aws_athena_workgroup" "pipeline" {
  name        = local.name
  description = "Queries of the Tascomi planning data (${local.raw_database}, ${local.refined_database})"

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${local.refined_bucket}/${local.athena_results_prefix}"

      encryption_configuration {
        encryption_option = var.kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}
