# Traces (optional, var.enable_trace_collector): an AWS Distro for OpenTelemetry (ADOT) collector
# beside each service in its task. The service exports spans over OTLP/gRPC to localhost:4317,
# which never leaves the task (the containers of a Fargate task share one network namespace,
# and the collector listens on the loopback address only); the collector batches them and
# sends them to AWS X-Ray over HTTPS (443, which the tasks' security group allows). Without it,
# OTLP over plain gRPC would have to cross the network to a collector elsewhere.
#
# The collector is not essential: if it stops, the service goes on without traces (its
# exporter drops what it cannot send). Its logs go to the service's log group under the
# `collector/` stream prefix.

locals {
  trace_collector_name     = "aws-otel-collector"
  trace_collector_endpoint = "http://localhost:4317"

  # The collector's configuration, passed inline (ADOT reads AOT_CONFIG_CONTENT).
  trace_collector_config = yamlencode({
    extensions = {
      health_check = { endpoint = "127.0.0.1:13133" }
    }
    receivers = {
      otlp = { protocols = { grpc = { endpoint = "127.0.0.1:4317" } } }
    }
    processors = {
      batch = { timeout = "5s" }
    }
    exporters = {
      # The runner's span attributes `stage` and `table` become X-Ray annotations, which the
      # console can filter on (annotation.table = "applications").
      awsxray = { region = var.aws_region, indexed_attributes = ["stage", "table"] }
    }
    service = {
      extensions = ["health_check"]
      pipelines = {
        traces = { receivers = ["otlp"], processors = ["batch"], exporters = ["awsxray"] }
      }
    }
  })

  # Per stage: the collector's container definition, or none.
  trace_collector_containers = {
    for stage, def in local.stages : stage => var.enable_trace_collector ? [
      {
        name                   = local.trace_collector_name
        image                  = var.trace_collector_image
        essential              = false
        readonlyRootFilesystem = true
        cpu                    = 128
        memory                 = 256
        environment = [
          { name = "AOT_CONFIG_CONTENT", value = local.trace_collector_config },
        ]
        healthCheck = {
          command     = ["CMD", "/healthcheck"]
          interval    = 30
          timeout     = 5
          retries     = 3
          startPeriod = 10
        }
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = aws_cloudwatch_log_group.stage[stage].name
            awslogs-region        = var.aws_region
            awslogs-stream-prefix = "collector"
          }
        }
      },
    ] : []
  }
}
