#!/bin/sh
# Creates what infra/ creates on AWS, on LocalStack (S3, SQS) and moto (Glue), for
# docker-compose.yml: the raw and refined buckets, a queue and a dead-letter queue per stage
# (named like infra/modules/tascomi-pipeline/queues.tf: $NAME-<stage> and $NAME-<stage>-dlq), and the two Glue databases.
#
# Idempotent: existing buckets, queues and databases are kept (queue attributes are set again).
# Reads: NAME, TASCOMI_RAW_BUCKET, TASCOMI_REFINED_BUCKET, TASCOMI_DATABASE_PREFIX,
# MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_SECS, and the AWS_* endpoint settings of the compose file.
set -eu

: "${NAME:?}" "${TASCOMI_RAW_BUCKET:?}" "${TASCOMI_REFINED_BUCKET:?}" "${TASCOMI_DATABASE_PREFIX:?}"
MAX_RECEIVE_COUNT="${MAX_RECEIVE_COUNT:-5}"
VISIBILITY_TIMEOUT_SECS="${VISIBILITY_TIMEOUT_SECS:-300}"

# LocalStack is reached by one host name: bucket names must go in the path.
aws configure set default.s3.addressing_style path

for bucket in "$TASCOMI_RAW_BUCKET" "$TASCOMI_REFINED_BUCKET"; do
  if aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    echo "bucket $bucket exists"
  else
    aws s3 mb "s3://$bucket"
  fi
done

attributes_file=/tmp/queue-attributes.json
for stage in ingest parse recast snapshot; do
  dlq_url=$(aws sqs create-queue --queue-name "${NAME}-${stage}-dlq" \
    --attributes MessageRetentionPeriod=1209600 --query QueueUrl --output text)
  dlq_arn=$(aws sqs get-queue-attributes --queue-url "$dlq_url" \
    --attribute-names QueueArn --query Attributes.QueueArn --output text)
  queue_url=$(aws sqs create-queue --queue-name "${NAME}-${stage}" --query QueueUrl --output text)
  printf '{"VisibilityTimeout":"%s","ReceiveMessageWaitTimeSeconds":"20","RedrivePolicy":"{\\"deadLetterTargetArn\\":\\"%s\\",\\"maxReceiveCount\\":\\"%s\\"}"}\n' \
    "$VISIBILITY_TIMEOUT_SECS" "$dlq_arn" "$MAX_RECEIVE_COUNT" >"$attributes_file"
  aws sqs set-queue-attributes --queue-url "$queue_url" --attributes "file://$attributes_file"
  echo "queue $queue_url (dead letters: $dlq_url)"
done

for zone in raw refined; do
  database="${TASCOMI_DATABASE_PREFIX}-tascomi-${zone}-zone"
  if aws glue get-database --name "$database" >/dev/null 2>&1; then
    echo "database $database exists"
  else
    aws glue create-database --database-input "Name=$database"
    echo "database $database created"
  fi
done
