# One CloudWatch dashboard per deployment: per stage, the queue (waiting, in flight, oldest
# message, dead letters) and the tasks running; per table, the snapshot's age and the rows each
# stage wrote; the ingest and parse counters; the alarms. docs/deploy.md explains how to read it.

locals {
  dashboard_period = 300
  sqs_widgets = [
    for index, stage in keys(local.stages) : {
      type   = "metric"
      x      = (index % 2) * 12
      y      = floor(index / 2) * 6
      width  = 12
      height = 6
      properties = {
        title  = "${stage}: messages"
        region = var.aws_region
        stat   = "Maximum"
        period = local.dashboard_period
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.stage[stage].name, { label = "waiting" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", aws_sqs_queue.stage[stage].name, { label = "in flight" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dead_letter[stage].name, { label = "dead letters", color = "#d62728" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.stage[stage].name, { label = "oldest message (s)", yAxis = "right" }],
          ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", local.name, "ServiceName", local.stages[stage].service, { label = "tasks", yAxis = "right" }],
        ]
      }
    }
  ]

  # SEARCH expressions: every table, whichever tables the pipeline file names today.
  search_widgets = [
    {
      title = "Snapshot age per table (hours; alarm above 24 or 168 + grace)"
      query = "SEARCH('{Tascomi,Table} MetricName=\"SnapshotAgeHours\"', 'Maximum', 3600)"
    },
    {
      title = "Rows written per stage and table (per day)"
      query = "SEARCH('{Tascomi,Stage,Table} MetricName=\"RecordsWritten\"', 'Sum', 86400)"
    },
    {
      title = "Seconds per message, per stage and table"
      query = "SEARCH('{Tascomi,Stage,Table} MetricName=\"MessageSeconds\"', 'Maximum', 3600)"
    },
    {
      title = "Ingest: failed pages, lookback days cut (alarmed)"
      query = "SEARCH('{Tascomi,Stage,Table} Stage=\"ingest\" (MetricName=\"FailedPages\" OR MetricName=\"DaysCut\")', 'Sum', 3600)"
    },
    {
      title = "Ingest: re-queries, records recovered, future-dated records"
      query = "SEARCH('{Tascomi,Stage,Table} Stage=\"ingest\" (MetricName=\"${join("\" OR MetricName=\"", slice(local.ingest_dashboard_metrics, 0, 3))}\")', 'Sum', 3600)"
    },
    {
      title = "Parse: duplicates collapsed, superseded versions dropped"
      query = "SEARCH('{Tascomi,Stage,Table} Stage=\"parse\" (MetricName=\"${join("\" OR MetricName=\"", local.parse_dashboard_metrics)}\")', 'Sum', 3600)"
    },
  ]

  table_widgets = [
    for index, widget in local.search_widgets : {
      type   = "metric"
      x      = (index % 2) * 12
      y      = 12 + floor(index / 2) * 6
      width  = 12
      height = 6
      properties = {
        title   = widget.title
        region  = var.aws_region
        view    = "timeSeries"
        metrics = [[{ expression = widget.query, id = "e${index}", label = "" }]]
      }
    }
  ]

  alarm_widget = {
    type   = "alarm"
    x      = 0
    y      = 30
    width  = 24
    height = 6
    properties = {
      title = "Alarms"
      alarms = concat(
        # Every stage's dead letters, then every stage's oldest message.
        flatten([for kind in ["dead-letters", "oldest-message"] : [for stage in keys(local.stages) : aws_cloudwatch_metric_alarm.queue["${stage}-${kind}"].arn]]),
        [for alarm in aws_cloudwatch_metric_alarm.ingest : alarm.arn],
        [for alarm in aws_cloudwatch_metric_alarm.scheduler : alarm.arn],
        # An alarm widget shows at most 100 alarms.
        slice([for alarm in aws_cloudwatch_metric_alarm.snapshot_freshness : alarm.arn], 0, min(length(local.tables), 80)),
      )
    }
  }
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  count = var.dashboard ? 1 : 0

  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = concat(local.sqs_widgets, local.table_widgets, [local.alarm_widget])
  })
}
