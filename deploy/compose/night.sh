#!/bin/sh
# Sends one night's ingest requests, as the EventBridge schedules do on AWS (infra/modules/tascomi-pipeline/schedule.tf):
# one message per table to the ingest queue. Tables: $TABLES (space-separated) if set, else
# every table of the pipeline file. $MODE: incremental (default), full or retry-failed.
#
# Reads: INGEST_QUEUE_URL, PIPELINE_FILE, TABLES, MODE, and the AWS_* settings of the compose file.
set -eu

: "${INGEST_QUEUE_URL:?}"
PIPELINE_FILE="${PIPELINE_FILE:-/etc/tascomi/pipeline.yaml}"
MODE="${MODE:-incremental}"
TABLES="${TABLES:-}"

case "$MODE" in
  incremental | full | retry-failed) ;;
  *) echo "MODE must be incremental, full or retry-failed, not $MODE" >&2; exit 2 ;;
esac

if [ -z "$TABLES" ]; then
  # The keys of the top-level `tables:` map: two-space indented names, comments skipped.
  TABLES=$(sed -n '/^tables:/,/^[^ #]/ s/^  \([a-z][a-z0-9_]*\):.*/\1/p' "$PIPELINE_FILE")
fi
if [ -z "$TABLES" ]; then
  echo "no tables in $PIPELINE_FILE" >&2
  exit 1
fi

count=0
for table in $TABLES; do
  aws sqs send-message --queue-url "$INGEST_QUEUE_URL" --output text --query MessageId \
    --message-body "{\"version\":1,\"type\":\"ingest_request\",\"table\":\"$table\",\"mode\":\"$MODE\",\"requested_by\":\"schedule\"}" \
    >/dev/null
  echo "ingest request sent: $table ($MODE)"
  count=$((count + 1))
done
echo "$count ingest requests sent"
