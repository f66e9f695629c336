#!/usr/bin/env bash
# LocalStack's S3, SQS and EventBridge without Docker, on a free loopback port, for the compose test
# (tests/e2e/tests/compose_on_localstack.rs; docs/deploy.md, "LocalStack without Docker").
#
#   bash scripts/localstack.sh                start it, print the endpoint, run until Ctrl-C/SIGTERM
#   bash scripts/localstack.sh --ready FILE   the same, and write the endpoint to FILE once healthy
#                                             (scripts/test.sh waits for FILE)
#   bash scripts/localstack.sh --install      install only
#
# Installs the pinned localstack-core into .venv-localstack (its own venv: its dependency pins
# must not move moto's in .venv), again only when the pins below change. Runs it as a plain
# Python process bound to 127.0.0.1, with no auth token, no persistence and its files in a
# temporary folder; stops it (SIGTERM, SIGKILL after 10 s) and removes the folder when this
# script exits. Exits non-zero when the install fails or LocalStack is not healthy within 60 s.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/servers.sh
source "$repo/scripts/servers.sh"
python="${PYTHON:-python3}"
venv="$repo/.venv-localstack"
version=4.13.1
# 4.13.1 is the last release that runs on Python 3.11 (4.14 uses 3.12 syntax). Its own
# requirements miss these: cbor2 6 dropped a module it imports (seen only as "No component
# plugins found"), pyopenssl 26 / cryptography 47 break its certificate generation, and
# localstack-twisted needs service_identity without declaring it.
requirements=("localstack-core[runtime]==$version" 'cbor2<6' 'pyopenssl<26' 'cryptography<47' 'service_identity')
stamp="$venv/.localstack-requirements"

ready_file=
install_only=
case "${1:-}" in
  --ready) ready_file="${2:?--ready needs a file}" ;;
  --install) install_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--ready FILE | --install]" >&2; exit 2 ;;
esac

if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$(printf '%s\n' "${requirements[@]}")" ]]; then
  started=$SECONDS
  echo "localstack.sh: installing localstack-core $version into .venv-localstack"
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
  printf '%s\n' "${requirements[@]}" >"$stamp"
  echo "localstack.sh: installed in $((SECONDS - started)) s"
fi
[[ -z "$install_only" ]] || exit 0

port="$(free_port "$venv/bin/python")"
endpoint="http://127.0.0.1:$port"
root="$(mktemp -d -t localstack.XXXXXX)"
log="$root/localstack.log"
pid=

stop() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # It sometimes hangs on shutdown: give it 10 s.
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$root"
}
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

start_time=$EPOCHREALTIME
# GATEWAY_SERVER=hypercorn: the default server binds every interface whatever GATEWAY_LISTEN
# says. OVERRIDE_IN_DOCKER=0 and FILESYSTEM_ROOT: a machine that looks like a container would
# make it write under /var/lib and /etc. SQS_ENDPOINT_STRATEGY=path: queue URLs on the endpoint
# itself (http://127.0.0.1:PORT/000000000000/NAME), as compose's. No outside calls: no events,
# no DNS server, no certificate download. AWS_* of the caller (moto's endpoint) are not its own.
env -u LOCALSTACK_AUTH_TOKEN -u LOCALSTACK_API_KEY -u AWS_ENDPOINT_URL \
  GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER=hypercorn SERVICES=s3,sqs,events PERSISTENCE=0 \
  OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$root/fs" DNS_ADDRESS=0 DISABLE_EVENTS=1 \
  SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 \
  LOCALSTACK_HOST="127.0.0.1:$port" SQS_ENDPOINT_STRATEGY=path AWS_DEFAULT_REGION=eu-west-2 \
  "$venv/bin/python" -m localstack.runtime.main >"$log" 2>&1 &
pid=$!

if ! await_http "$venv/bin/python" "$endpoint/_localstack/health" "$pid" 60 s3 sqs events; then
  echo "localstack.sh: LocalStack did not become healthy on $endpoint; its log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
seconds="$("$venv/bin/python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start_time" "$EPOCHREALTIME")"
echo "localstack.sh: LocalStack $version (S3, SQS, EventBridge) on $endpoint, healthy after $seconds s"
if [[ -n "$ready_file" ]]; then
  echo "$endpoint" >"$ready_file"
fi
# Runs until LocalStack ends or this script is told to stop (the EXIT trap stops LocalStack).
wait "$pid" || true
echo "localstack.sh: LocalStack stopped by itself; its log:" >&2
tail -n 40 "$log" >&2
exit 1
