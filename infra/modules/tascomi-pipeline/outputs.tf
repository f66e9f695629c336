# What operators, the `tascomi` command and analysts need from a deployment.

output "queue_urls" {
  description = "Input queue of each stage."
  value       = { for stage, queue in aws_sqs_queue.stage : stage => queue.url }
}

output "dead_letter_queue_urls" {
  description = "Dead-letter queue of each stage."
  value       = { for stage, queue in aws_sqs_queue.dead_letter : stage => queue.url }
}

output "raw_bucket" {
  description = "Raw-zone bucket (api-responses, parsed, ingest state)."
  value       = local.raw_bucket
}

output "refined_bucket" {
  description = "Refined-zone bucket (increment, snapshot, data-quality results)."
  value       = local.refined_bucket
}

output "athena_databases" {
  description = "Glue databases to query from Athena."
  value = {
    raw     = local.raw_database
    refined = local.refined_database
  }
}

output "athena_workgroup" {
  description = "Athena workgroup for the pipeline's databases (encrypted results, scan limit)."
  value       = aws_athena_workgroup.pipeline.name
}

output "ecs_cluster" {
  description = "ECS cluster of the services."
  value       = aws_ecs_cluster.pipeline.name
}

output "ecs_services" {
  description = "ECS service of each stage."
  value       = { for stage, service in aws_ecs_service.stage : stage => service.name }
}

output "log_groups" {
  description = "CloudWatch log group of each stage."
  value       = { for stage, group in aws_cloudwatch_log_group.stage : stage => group.name }
}

output "task_role_arns" {
  description = "Task role of each stage."
  value       = { for stage, role in aws_iam_role.task : stage => role.arn }
}

output "operator_role_arn" {
  description = "Role for the `tascomi` operator commands (operators.tf)."
  value       = aws_iam_role.people["operator"].arn
}

output "read_only_role_arn" {
  description = "Role for `tascomi status` and `tascomi drift`."
  value       = aws_iam_role.people["read_only"].arn
}

output "dashboard_url" {
  description = "The CloudWatch dashboard of this deployment."
  value       = var.dashboard ? "https://${var.aws_region}.console.aws.amazon.com/cloudwatch/home?region=${var.aws_region}#dashboards/dashboard/${aws_cloudwatch_dashboard.pipeline[0].dashboard_name}" : null
}

output "alarm_topic_arn" {
  description = "SNS topic receiving the alarms."
  value       = local.alarm_topic_arn
}

output "schedules" {
  description = "Each table's schedule expression (Europe/London)."
  value       = { for table, schedule in aws_scheduler_schedule.ingest : table => schedule.schedule_expression }
}

output "operator_environment" {
  description = "Environment of the `tascomi` operator command against this deployment (ctl/src/target.rs); export these beside AWS credentials."
  value = merge(
    {
      AWS_REGION              = var.aws_region
      TASCOMI_RAW_BUCKET      = local.raw_bucket
      TASCOMI_REFINED_BUCKET  = local.refined_bucket
      TASCOMI_DATABASE_PREFIX = local.database_prefix
    },
    { for stage, queue in aws_sqs_queue.stage : "TASCOMI_${upper(stage)}_QUEUE_URL" => queue.url },
    { for stage, queue in aws_sqs_queue.dead_letter : "TASCOMI_${upper(stage)}_DEAD_LETTER_QUEUE_URL" => queue.url },
  )
}
