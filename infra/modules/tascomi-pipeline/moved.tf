# Where resources were before they were folded into one block each (issue 14): these blocks let
# `terraform apply` on an existing deployment rename them in its state instead of destroying and
# recreating them. Keep them until every deployment has applied a release that has them.

moved {
  from = aws_appautoscaling_policy.scale_in["ingest"]
  to   = aws_appautoscaling_policy.step["ingest-scale-in"]
}

moved {
  from = aws_appautoscaling_policy.scale_in["parse"]
  to   = aws_appautoscaling_policy.step["parse-scale-in"]
}

moved {
  from = aws_appautoscaling_policy.scale_in["recast"]
  to   = aws_appautoscaling_policy.step["recast-scale-in"]
}

moved {
  from = aws_appautoscaling_policy.scale_in["snapshot"]
  to   = aws_appautoscaling_policy.step["snapshot-scale-in"]
}

moved {
  from = aws_appautoscaling_policy.scale_out["ingest"]
  to   = aws_appautoscaling_policy.step["ingest-scale-out"]
}

moved {
  from = aws_appautoscaling_policy.scale_out["parse"]
  to   = aws_appautoscaling_policy.step["parse-scale-out"]
}

moved {
  from = aws_appautoscaling_policy.scale_out["recast"]
  to   = aws_appautoscaling_policy.step["recast-scale-out"]
}

moved {
  from = aws_appautoscaling_policy.scale_out["snapshot"]
  to   = aws_appautoscaling_policy.step["snapshot-scale-out"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letter_messages["ingest"]
  to   = aws_cloudwatch_metric_alarm.queue["ingest-dead-letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letter_messages["parse"]
  to   = aws_cloudwatch_metric_alarm.queue["parse-dead-letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letter_messages["recast"]
  to   = aws_cloudwatch_metric_alarm.queue["recast-dead-letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letter_messages["snapshot"]
  to   = aws_cloudwatch_metric_alarm.queue["snapshot-dead-letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["ingest"]
  to   = aws_cloudwatch_metric_alarm.queue["ingest-oldest-message"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["parse"]
  to   = aws_cloudwatch_metric_alarm.queue["parse-oldest-message"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["recast"]
  to   = aws_cloudwatch_metric_alarm.queue["recast-oldest-message"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["snapshot"]
  to   = aws_cloudwatch_metric_alarm.queue["snapshot-oldest-message"]
}

moved {
  from = aws_iam_role.operator
  to   = aws_iam_role.people["operator"]
}

moved {
  from = aws_iam_role.read_only
  to   = aws_iam_role.people["read_only"]
}

moved {
  from = aws_iam_role_policy.operator
  to   = aws_iam_role_policy.people["operator"]
}

moved {
  from = aws_iam_role_policy.read_only
  to   = aws_iam_role_policy.people["read_only"]
}

moved {
  from = aws_cloudwatch_event_rule.service_impaired
  to   = aws_cloudwatch_event_rule.ecs["service-impaired"]
}

moved {
  from = aws_cloudwatch_event_rule.task_failed
  to   = aws_cloudwatch_event_rule.ecs["task-failed"]
}

moved {
  from = aws_cloudwatch_event_target.service_impaired
  to   = aws_cloudwatch_event_target.ecs["service-impaired"]
}

moved {
  from = aws_cloudwatch_event_target.task_failed[0]
  to   = aws_cloudwatch_event_target.ecs["task-failed"]
}
