# Names, the stages, the data layout and each service's environment, in one place.

locals {
  name            = "${var.name_prefix}-${var.environment}"
  account_id      = data.aws_caller_identity.current.account_id
  partition       = data.aws_partition.current.partition
  database_prefix = coalesce(var.database_prefix, local.name)

  # The four stages, in pipeline order; `service` is the binary in the image. Queues, dead-letter
  # queues, task definitions, services, roles and alarms are all generated from this map.
  stages = {
    ingest   = { service = "ingest-svc", next = "parse" }
    parse    = { service = "parse-svc", next = "recast" }
    recast   = { service = "recast-svc", next = "snapshot" }
    snapshot = { service = "snapshot-svc", next = null }
  }

  # Sizing per stage; var.stages overrides single fields. The snapshot holds one increment in
  # memory while it merges, hence its larger task. Visibility timeouts are short because the
  # services renew a message's lease at half-time while they work: the timeout only bounds how
  # soon a crashed task's message is handled again.
  stage_defaults = {
    ingest   = { cpu = 512, memory = 1024, concurrency = 2, max_tasks = 4, fast_scale_out_backlog = 8, visibility_timeout_secs = 300 }
    parse    = { cpu = 1024, memory = 2048, concurrency = 2, max_tasks = 4, fast_scale_out_backlog = 8, visibility_timeout_secs = 300 }
    recast   = { cpu = 1024, memory = 2048, concurrency = 2, max_tasks = 4, fast_scale_out_backlog = 8, visibility_timeout_secs = 300 }
    snapshot = { cpu = 2048, memory = 8192, concurrency = 1, max_tasks = 4, fast_scale_out_backlog = 8, visibility_timeout_secs = 300 }
  }
  stage_settings = {
    for stage, defaults in local.stage_defaults : stage => merge(
      defaults,
      { for field, value in try(var.stages[stage], {}) : field => value if value != null },
    )
  }

  # Key prefixes of the data lake (the brief's table layout; common/src/layout.rs). IAM grants
  # are scoped to these.
  prefixes = {
    api_responses = "planning/tascomi/api-responses/"
    parsed        = "planning/tascomi/parsed/"
    ingest_state  = "planning/tascomi/_state/ingest/"
    increment     = "planning/tascomi/increment/"
    snapshot      = "planning/tascomi/snapshot/"
    data_quality  = "planning/tascomi/data-quality/"
  }

  raw_bucket         = var.create_buckets ? aws_s3_bucket.zone["raw"].id : var.raw_bucket_name
  refined_bucket     = var.create_buckets ? aws_s3_bucket.zone["refined"].id : var.refined_bucket_name
  raw_bucket_arn     = "arn:${local.partition}:s3:::${local.raw_bucket}"
  refined_bucket_arn = "arn:${local.partition}:s3:::${local.refined_bucket}"

  raw_database     = "${local.database_prefix}-tascomi-raw-zone"
  refined_database = "${local.database_prefix}-tascomi-refined-zone"

  # Where the image keeps the pipeline file (Dockerfile).
  pipeline_file_in_image = "/etc/tascomi/pipeline.yaml"

  # Environment of every service container. Names are the ones the services read (common/src);
  # an empty value means unset. tests/infra-check checks both directions.
  common_environment = {
    AWS_REGION              = var.aws_region
    TASCOMI_RAW_BUCKET      = local.raw_bucket
    TASCOMI_REFINED_BUCKET  = local.refined_bucket
    TASCOMI_DATABASE_PREFIX = local.database_prefix
    TASCOMI_PIPELINE_FILE   = local.pipeline_file_in_image
    # Read once at start-up (dictionary.tf); only recast-svc types columns with it.
    TASCOMI_COLUMN_TYPE_DICTIONARY = local.column_type_dictionary_uri
    TASCOMI_LOG_FORMAT             = "json"
    TASCOMI_WAIT_TIME_SECS         = "20"
    TASCOMI_SHUTDOWN_GRACE_SECS    = tostring(var.stop_timeout_secs - 10)
    OTEL_EXPORTER_OTLP_ENDPOINT    = var.enable_trace_collector ? local.trace_collector_endpoint : var.otel_exporter_otlp_endpoint
    # The module creates the Glue databases (storage.tf): the services only check that they
    # exist and never call glue:CreateDatabase, which Lake Formation would deny.
    TASCOMI_MANAGE_DATABASES = "false"
  }

  # Per stage: its queues and settings, and what only that stage reads.
  stage_environment = {
    ingest = {
      TASCOMI_API_BASE_URL                = var.tascomi_api_base_url
      TASCOMI_API_SECRET_ID               = var.tascomi_api_secret_arn
      TASCOMI_API_MAX_CONCURRENT_REQUESTS = tostring(var.tascomi_api_max_concurrent_requests)
    }
    parse  = {}
    recast = {}
    snapshot = {
      # Where each published snapshot is announced (common/src/events.rs).
      TASCOMI_EVENT_BUS = var.event_bus_name
    }
  }

  environment = {
    for stage, def in local.stages : stage => merge(
      local.common_environment,
      {
        TASCOMI_QUEUE_URL               = aws_sqs_queue.stage[stage].url
        TASCOMI_NEXT_QUEUE_URL          = def.next == null ? "" : aws_sqs_queue.stage[def.next].url
        TASCOMI_DEAD_LETTER_QUEUE_URL   = aws_sqs_queue.dead_letter[stage].url
        TASCOMI_CONCURRENCY             = tostring(local.stage_settings[stage].concurrency)
        TASCOMI_VISIBILITY_TIMEOUT_SECS = tostring(local.stage_settings[stage].visibility_timeout_secs)
        # The runner dead-letters a message with its reason on this receive, before SQS's redrive
        # would move it there without one.
        TASCOMI_MAX_RECEIVES = tostring(var.max_receive_count)
      },
      local.stage_environment[stage],
    )
  }

}
