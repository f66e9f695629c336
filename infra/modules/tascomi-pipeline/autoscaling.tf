# Scaling on queue depth, down to zero. Target tracking cannot start from zero tasks (it scales
# in proportion to the running count), so each stage has two step-scaling policies:
#   - messages waiting (visible) on its queue: add a task a minute (two while the backlog is at
#     least fast_scale_out_backlog), up to max_tasks. Scaling out never stops a task;
#   - nothing waiting and nothing in flight for scale_in_idle_minutes: zero tasks. In-flight
#     messages count, so a task is never stopped in the middle of a message by scaling.
# SQS publishes its metrics every minute (an idle queue's first metric can lag by several
# minutes), so the first task of a night starts a few minutes after the schedule fires.

resource "aws_appautoscaling_target" "stage" {
  for_each = local.stages

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.pipeline.name}/${aws_ecs_service.stage[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 0
  max_capacity       = local.stage_settings[each.key].max_tasks
}

locals {
  # Each stage's two step-scaling policies, by name after <name>-. Bounds are relative to the
  # threshold of the alarm that triggers the policy (queue_busy: 1 visible message; queue_idle).
  scaling_policies = merge([
    for stage in keys(local.stages) : {
      "${stage}-scale-out" = {
        stage           = stage
        adjustment_type = "ChangeInCapacity"
        steps = [
          { lower = 0, upper = local.stage_settings[stage].fast_scale_out_backlog - 1, adjustment = 1 },
          { lower = local.stage_settings[stage].fast_scale_out_backlog - 1, upper = null, adjustment = 2 },
        ]
      }
      "${stage}-scale-in" = {
        stage           = stage
        adjustment_type = "ExactCapacity"
        steps           = [{ lower = null, upper = 0, adjustment = 0 }]
      }
    }
  ]...)
}

resource "aws_appautoscaling_policy" "step" {
  for_each = local.scaling_policies

  name               = "${local.name}-${each.key}"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.stage[each.value.stage].service_namespace
  resource_id        = aws_appautoscaling_target.stage[each.value.stage].resource_id
  scalable_dimension = aws_appautoscaling_target.stage[each.value.stage].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = each.value.adjustment_type
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    dynamic "step_adjustment" {
      for_each = each.value.steps
      content {
        metric_interval_lower_bound = step_adjustment.value.lower
        metric_interval_upper_bound = step_adjustment.value.upper
        scaling_adjustment          = step_adjustment.value.adjustment
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.stage_settings[each.value.stage].fast_scale_out_backlog >= 2
      error_message = "stages.${each.value.stage}.fast_scale_out_backlog must be at least 2."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "queue_busy" {
  for_each = local.stages

  alarm_name          = "${local.name}-${each.key}-queue-busy"
  alarm_description   = "Scales ${each.value.service} out: messages are waiting on its queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.stage[each.key].name }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.step["${each.key}-scale-out"].arn]
}

resource "aws_cloudwatch_metric_alarm" "queue_idle" {
  for_each = local.stages

  alarm_name          = "${local.name}-${each.key}-queue-idle"
  alarm_description   = "Scales ${each.value.service} to zero: its queue has been empty for ${var.scale_in_idle_minutes} minutes."
  comparison_operator = "LessThanOrEqualToThreshold"
  threshold           = 0
  evaluation_periods  = var.scale_in_idle_minutes
  datapoints_to_alarm = var.scale_in_idle_minutes
  # No data from an idle queue means empty.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_appautoscaling_policy.step["${each.key}-scale-in"].arn]

  metric_query {
    id          = "depth"
    expression  = "visible + in_flight"
    label       = "Messages visible or in flight"
    return_data = true
  }

  # The two terms of depth, by id.
  dynamic "metric_query" {
    for_each = { visible = "ApproximateNumberOfMessagesVisible", in_flight = "ApproximateNumberOfMessagesNotVisible" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value
        dimensions  = { QueueName = aws_sqs_queue.stage[each.key].name }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
}
