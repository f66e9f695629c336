# The ECS cluster and one Fargate service per stage. Every service runs the same image with a
# different binary; it long-polls its queue and stops taking messages on SIGTERM.

resource "aws_ecs_cluster" "pipeline" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "pipeline" {
  cluster_name       = aws_ecs_cluster.pipeline.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# The tasks take no inbound connections; they call the Tascomi API and AWS endpoints over HTTPS.
resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "Tascomi pipeline tasks: no inbound, HTTPS outbound"
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS to the Tascomi API and AWS endpoints"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.egress_cidr_blocks
  }
}

resource "aws_cloudwatch_log_group" "stage" {
  for_each = local.stages

  name              = "/ecs/${local.name}/${each.value.service}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "stage" {
  for_each = local.stages

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.stage_settings[each.key].cpu
  memory                   = local.stage_settings[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The root filesystem is read-only; this is the one writable place.
  volume {
    name = "tmp"
  }

  # The service, and the trace collector beside it when var.enable_trace_collector (traces.tf).
  container_definitions = jsonencode(concat([
    merge(
      {
        name      = each.value.service
        image     = "${var.image_repository}:${lookup(var.image_tags, each.key, var.image_tag)}"
        command   = ["/usr/local/bin/${each.value.service}"]
        essential = true
        # The image's non-root user (Dockerfile); repeated so that another image cannot run as root.
        user                   = "10001:10001"
        readonlyRootFilesystem = true
        stopTimeout            = var.stop_timeout_secs
        linuxParameters = {
          initProcessEnabled = true
        }
        # The service's own probe: its settings load from this environment (exit 0) or it says
        # why not, in the task's health status. The image's HEALTHCHECK runs the same.
        healthCheck = {
          command     = ["CMD", "/usr/local/bin/${each.value.service}", "--health"]
          interval    = 30
          timeout     = 10
          retries     = 3
          startPeriod = 15
        }
        mountPoints = [
          { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
        ]
        environment = [
          for env_name, env_value in local.environment[each.key] : { name = env_name, value = env_value }
        ]
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = aws_cloudwatch_log_group.stage[each.key].name
            awslogs-region        = var.aws_region
            awslogs-stream-prefix = each.key
          }
        }
      },
      # The collector is listening before the service sends its first span.
      var.enable_trace_collector ? { dependsOn = [{ containerName = local.trace_collector_name, condition = "START" }] } : null,
    ),
  ], local.trace_collector_containers[each.key]))
}

resource "aws_ecs_service" "stage" {
  for_each = local.stages

  name            = each.value.service
  cluster         = aws_ecs_cluster.pipeline.id
  task_definition = aws_ecs_task_definition.stage[each.key].arn
  # Fargate Spot (var.fargate_spot_stages): an interrupted task gets SIGTERM two minutes ahead,
  # as on a deployment, and returns its messages; the next task handles them again.
  launch_type = contains(var.fargate_spot_stages, each.key) ? null : "FARGATE"

  dynamic "capacity_provider_strategy" {
    for_each = contains(var.fargate_spot_stages, each.key) ? ["FARGATE_SPOT"] : []
    content {
      capacity_provider = capacity_provider_strategy.value
      weight            = 1
    }
  }
  # Scaling owns the count (autoscaling.tf): zero while the queue is empty.
  desired_count = 0

  # Each task leases its own messages, so old and new tasks may overlap during a deployment.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 200
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.additional_security_group_ids)
    assign_public_ip = var.assign_public_ip
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}
