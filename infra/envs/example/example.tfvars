# An example of a council's settings: copy to <environment>.tfvars, fill in, then
#   terraform -chdir=infra/envs/example init -backend-config=backend.hcl
#   terraform -chdir=infra/envs/example apply -var-file=<environment>.tfvars
# The inputs are in variables.tf here, and every input of the module, with its default, in
# infra/modules/tascomi-pipeline/variables.tf. See docs/deploy.md.

environment = "prod"
aws_region  = "eu-west-2"

# The council's column-type dictionary: the module uploads it to S3 and every service reads it
# from there at start-up (a new dictionary is a new `terraform apply`, never a new image). Or name
# an object the council keeps: column_type_dictionary_s3_uri = "s3://bucket/key".
column_type_dictionary_path = "column-type-dictionary.json" # from the council's configuration repository

# The image built from the Dockerfile and pushed to this repository.
image_repository   = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/tascomi"
image_tag          = "2026-11-21.1"
ecr_repository_arn = "arn:aws:ecr:eu-west-2:123456789012:repository/tascomi"

# Private subnets with a NAT gateway (or VPC endpoints) and a route to the Tascomi API.
vpc_id     = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]

tascomi_api_base_url   = "https://council-planning.idoxcloud.com/rest/v1/"
tascomi_api_secret_arn = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:tascomi/prod/api-keys-AbCdEf"

# Athena databases <database_prefix>-tascomi-raw-zone and -refined-zone: keep the names the
# analysts' queries already use.
database_prefix = "council"

alarm_email_addresses = ["data-platform@council.example"]

# Who runs the `tascomi` command (the operator role) and who only looks (read-only).
operator_principal_arns  = ["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-2/AWSReservedSSO_DataPlatformAdmin_0123456789abcdef"]
read_only_principal_arns = ["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-2/AWSReservedSSO_DataPlatformReadOnly_0123456789abcdef"]

tags = { CostCentre = "planning-data" }

# Optional:
# kms_key_arn             = "arn:aws:kms:eu-west-2:123456789012:key/..."
# snapshot_retention_days = 400
# chat_webhook_url        = "https://chat.googleapis.com/v1/spaces/.../messages?key=...&token=..."
# chat_slack              = { workspace_id = "T0123456789", channel_id = "C0123456789" }
