# Everything the module reports, for `terraform output` (operator_environment feeds the
# `tascomi` command: docs/deploy.md).

output "pipeline" {
  description = "The module's outputs: queues, buckets, Athena databases and workgroup, roles, alarm topic, dashboard."
  value       = module.tascomi
}

output "operator_environment" {
  description = "Environment of the `tascomi` command against this deployment."
  value       = module.tascomi.operator_environment
}
