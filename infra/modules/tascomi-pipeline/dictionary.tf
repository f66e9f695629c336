# The column-type dictionary: the council's configuration, not part of the image. The services
# read it once at start-up from the S3 object TASCOMI_COLUMN_TYPE_DICTIONARY names (locals.tf,
# every service's environment); every task role may read exactly that object (iam.tf,
# stage_common) and nothing else of its prefix.
#
# Either the module uploads the council's file (var.column_type_dictionary_path) into the
# refined bucket under a key holding a hash of its content, so that a changed dictionary is a
# new key, hence a new task definition revision and a rolling restart on `terraform apply`; or
# the council keeps the object itself (var.column_type_dictionary_s3_uri) and restarts the
# services after changing it (docs/deploy.md).

locals {
  column_type_dictionary_prefix = "planning/tascomi/_config/"

  # Bucket and key of the object, whichever variable names it.
  column_type_dictionary_object = (
    var.column_type_dictionary_s3_uri != null
    ? {
      bucket = regex("^s3://([^/]+)/", var.column_type_dictionary_s3_uri)[0]
      key    = regex("^s3://[^/]+/(.+)$", var.column_type_dictionary_s3_uri)[0]
    }
    : {
      bucket = local.refined_bucket
      key    = one(aws_s3_object.column_type_dictionary[*].key)
    }
  )
  column_type_dictionary_uri = "s3://${local.column_type_dictionary_object.bucket}/${local.column_type_dictionary_object.key}"
  column_type_dictionary_arn = "arn:${local.partition}:s3:::${local.column_type_dictionary_object.bucket}/${local.column_type_dictionary_object.key}"
}

resource "aws_s3_object" "column_type_dictionary" {
  count = var.column_type_dictionary_path == null ? 0 : 1

  bucket       = local.refined_bucket
  key          = "${local.column_type_dictionary_prefix}column-type-dictionary-${substr(filesha256(var.column_type_dictionary_path), 0, 16)}.json"
  source       = var.column_type_dictionary_path
  content_type = "application/json"
  # Encrypted as the bucket's default says (storage.tf): the data key the task roles may use.
}
