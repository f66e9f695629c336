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

resource "aws_appautoscaling_policy" "scale_out" {
  for_each = local.stages

  name               = "${local.name}-${each.key}-scale-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.stage[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.stage[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.stage[each.key].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    # Bounds are relative to the alarm threshold (1 visible message).
    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = local.stage_settings[each.key].fast_scale_out_backlog - 1
      scaling_adjustment          = 1
    }
    step_adjustment {
      metric_interval_lower_bound = local.stage_settings[each.key].fast_scale_out_backlog - 1
      scaling_adjustment          = 2
    }
  }

  lifecycle {
    precondition {
      condition     = local.stage_settings[each.key].fast_scale_out_backlog >= 2
      error_message = "stages.${each.key}.fast_scale_out_backlog must be at least 2."
    }
  }
}

resource "aws_appautoscaling_policy" "scale_in" {
  for_each = local.stages

  name               = "${local.name}-${each.key}-scale-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.stage[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.stage[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.stage[each.key].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = 0
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
  alarm_actions       = [aws_appautoscaling_policy.scale_out[each.key].arn]
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
  alarm_actions      = [aws_appautoscaling_policy.scale_in[each.key].arn]

  metric_query {
    id          = "depth"
    expression  = "visible + in_flight"
    label       = "Messages visible or in flight"
    return_data = true
  }

  metric_query {
    id = "visible"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.stage[each.key].name }
      period      = 60
      stat        = "Maximum"
    }
  }

  metric_query {
    id = "in_flight"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesNotVisible"
      dimensions  = { QueueName = aws_sqs_queue.stage[each.key].name }
      period      = 60
      stat        = "Maximum"
    }
  }
}
