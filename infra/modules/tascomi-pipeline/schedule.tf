# One EventBridge Scheduler schedule per table of the pipeline file, sending an ingest request to
# the ingest queue: daily tables every night at var.schedule_time, weekly tables on
# var.weekly_day, in London time (British Summer Time included). Adding a table to the pipeline
# file adds its schedule; nothing here changes. Weekly tables also get a carry-forward schedule
# for the other nights (below), so that every table has a snapshot of every day.

locals {
  # The same file the services read (TASCOMI_PIPELINE_FILE). A table is `name: daily`,
  # `name: weekly`, or a map with `schedule` and overrides.
  pipeline = yamldecode(file(coalesce(var.pipeline_file, "${path.module}/../../../pipeline.yaml")))
  tables   = { for table, entry in local.pipeline.tables : table => try(entry.schedule, entry) }

  schedule_hour   = tonumber(split(":", var.schedule_time)[0])
  schedule_minute = tonumber(split(":", var.schedule_time)[1])
  cron = {
    daily  = "cron(${local.schedule_minute} ${local.schedule_hour} * * ? *)"
    weekly = "cron(${local.schedule_minute} ${local.schedule_hour} ? * ${var.weekly_day} *)"
  }
}

resource "aws_scheduler_schedule_group" "ingest" {
  name = "${local.name}-ingest"
}

resource "aws_scheduler_schedule" "ingest" {
  for_each = local.tables

  name        = each.key
  group_name  = aws_scheduler_schedule_group.ingest.name
  description = "${title(each.value)} ingest request for ${each.key}"
  state       = var.schedules_enabled ? "ENABLED" : "DISABLED"
  # Null: an AWS-owned key.
  kms_key_arn = var.kms_key_arn

  schedule_expression          = lookup(local.cron, each.value, "invalid")
  schedule_expression_timezone = "Europe/London"

  # Fire at the set time: the night's order is the pipeline file's, not a random spread.
  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sqs_queue.stage["ingest"].arn
    role_arn = aws_iam_role.scheduler.arn
    # common/src/messages.rs: IngestRequest.
    input = jsonencode({
      version      = 1
      type         = "ingest_request"
      table        = each.key
      mode         = "incremental"
      requested_by = "schedule"
    })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 10
    }

    # An undeliverable request lands beside the ingest stage's failures, with the same body, so
    # `tascomi redrive --stage ingest` sends it again.
    dead_letter_config {
      arn = aws_sqs_queue.dead_letter["ingest"].arn
    }
  }

  lifecycle {
    precondition {
      condition     = contains(["daily", "weekly"], each.value)
      error_message = "Table ${each.key} in the pipeline file: schedule must be daily or weekly."
    }
  }
}

# Every table gets a snapshot of every day, weekly tables included: analysts join tables on equal
# snapshot_date (the Glue jobs this replaces re-saved a static table's snapshot each day). On the
# nights a weekly table is not fetched, its schedule sends a carry-forward request straight to the
# snapshot queue (common/src/messages.rs: PartitionReady with carry_forward, no partition: the
# day is the London today when it is handled), and snapshot-svc copies the table's latest
# snapshot to today's date, server-side (docs/snapshot.md). Nothing is fetched, parsed or recast.

locals {
  weekdays           = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
  carry_forward_days = join(",", [for day in local.weekdays : day if day != var.weekly_day])
  carry_forward_tables = {
    for table, schedule in local.tables : table => schedule if schedule == "weekly"
  }
}

resource "aws_scheduler_schedule_group" "carry_forward" {
  name = "${local.name}-carry-forward"
}

resource "aws_scheduler_schedule" "carry_forward" {
  for_each = local.carry_forward_tables

  name        = each.key
  group_name  = aws_scheduler_schedule_group.carry_forward.name
  description = "Snapshot carry-forward request for ${each.key} on the nights it is not fetched"
  state       = var.schedules_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn = var.kms_key_arn

  schedule_expression          = "cron(${local.schedule_minute} ${local.schedule_hour} ? * ${local.carry_forward_days} *)"
  schedule_expression_timezone = "Europe/London"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sqs_queue.stage["snapshot"].arn
    role_arn = aws_iam_role.scheduler.arn
    input = jsonencode({
      version       = 1
      type          = "partition_ready"
      table         = each.key
      layer         = "snapshot"
      partition     = {}
      location      = "s3://${local.refined_bucket}/${local.prefixes.snapshot}${each.key}/"
      run_id        = "schedule"
      carry_forward = true
    })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 10
    }

    # Beside the snapshot stage's failures: `tascomi redrive --stage snapshot` sends it again.
    dead_letter_config {
      arn = aws_sqs_queue.dead_letter["snapshot"].arn
    }
  }
}
