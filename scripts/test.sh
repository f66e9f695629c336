#!/usr/bin/env bash
# The project's test command: formatting, lints and every test, against a local moto server.
#
#   bash scripts/test.sh                           fmt --check, clippy -D warnings, cargo test --workspace
#   bash scripts/test.sh -p common --test moto_s3  only `cargo test <args>`, still with moto
#
# Needs a Rust toolchain and Python 3 with venv/pip. Creates .venv in the repository with the
# pinned tools of scripts/requirements-test.txt, starts moto on a free loopback port for the
# duration of the run, and stops it on exit whatever the outcome. Installs Chromium with apt-get
# when it is missing (the report's browser test opens the page in it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=scripts/servers.sh
source "$repo/scripts/servers.sh"

python="${PYTHON:-python3}"
venv="$repo/.venv"
requirements="$repo/scripts/requirements-test.txt"
stamp="$venv/.requirements-test.txt"

# Reinstall only when the pinned requirements changed since the last install.
if [[ ! -x "$venv/bin/python" ]]; then
  echo "test.sh: creating $venv"
  "$python" -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "test.sh: installing $(grep -cv '^#' "$requirements") pinned Python tools into .venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

# The report's browser test opens the page in a real headless Chromium, the distribution's
# package. Installed only when missing and apt-get exists (as root, or with passwordless sudo);
# from then on the test must run: TASCOMI_REQUIRE_BROWSER=1 makes a missing browser a failure
# rather than a skip.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  as_root=()
  if [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
  fi
  apt_log="$(mktemp -t apt-chromium.XXXXXX.log)"
  echo "test.sh: installing chromium (apt-get) for the report's browser test"
  if ! { "${as_root[@]}" apt-get update -qq &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$apt_log" 2>&1; then
    echo "test.sh: could not install chromium; the browser test will fail. apt-get said:" >&2
    tail -n 20 "$apt_log" >&2
  fi
  rm -f "$apt_log"
fi
if command -v chromium >/dev/null 2>&1 || command -v apt-get >/dev/null 2>&1; then
  export TASCOMI_REQUIRE_BROWSER=1
fi

port="$(free_port "$venv/bin/python")"
moto_log="$(mktemp -t moto.XXXXXX.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!

stop_moto() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$moto_log"
}
trap stop_moto EXIT

endpoint="http://127.0.0.1:$port"
# moto answers after about a second; give a loaded machine 30.
if ! await_http "$venv/bin/python" "$endpoint/moto-api/" "$moto_pid" 30; then
  echo "test.sh: moto did not start on $endpoint; its log:" >&2
  cat "$moto_log" >&2
  exit 1
fi
echo "test.sh: moto on $endpoint"

# LocalStack's S3 and SQS for the compose test (tests/e2e/tests/compose_on_localstack.rs), in its
# own venv and process (scripts/localstack.sh), started now and awaited before the tests. In CI
# a LocalStack that cannot be installed or started fails the run; elsewhere the test is skipped
# with the reason printed (TASCOMI_LOCALSTACK=0 skips it without trying).
localstack_ready="$(mktemp -t localstack-ready.XXXXXX)"
localstack_log="$(mktemp -t localstack.XXXXXX.log)"
localstack_pid=
if [[ "${TASCOMI_LOCALSTACK:-1}" != 0 || -n "${CI:-}" ]]; then
  bash "$repo/scripts/localstack.sh" --ready "$localstack_ready" >"$localstack_log" 2>&1 &
  localstack_pid=$!
fi
stop_localstack() {
  if [[ -n "$localstack_pid" ]]; then
    kill "$localstack_pid" 2>/dev/null || true
    wait "$localstack_pid" 2>/dev/null || true
  fi
  rm -f "$localstack_ready" "$localstack_log"
}
trap 'stop_localstack; stop_moto' EXIT
await_localstack() {
  while [[ -n "$localstack_pid" && ! -s "$localstack_ready" ]] && kill -0 "$localstack_pid" 2>/dev/null; do
    sleep 0.2
  done
  cat "$localstack_log"
  if [[ -s "$localstack_ready" ]]; then
    TASCOMI_LOCALSTACK_ENDPOINT="$(<"$localstack_ready")"
    export TASCOMI_LOCALSTACK_ENDPOINT
  elif [[ -n "${CI:-}" ]]; then
    echo "test.sh: LocalStack did not start (above); CI needs it" >&2
    exit 1
  else
    echo "test.sh: no LocalStack (above, or TASCOMI_LOCALSTACK=0): its compose test will be skipped"
  fi
}

# Loopback IP, not localhost: S3 virtual-host names would not resolve. Test credentials only.
export AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=eu-west-2
export AWS_EC2_METADATA_DISABLED=true
# With moto running, a test that finds no endpoint is a broken harness: fail, do not skip.
export TASCOMI_REQUIRE_MOTO=1
export TASCOMI_PYTHON="$venv/bin/python"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tascomi-target}"

if [[ $# -gt 0 ]]; then
  await_localstack
  cargo test "$@"
  exit
fi

cargo fmt --all --check
# The deployment files: terraform fmt/validate/test, checkov, compose (a missing tool is a
# reported skip here; run it with STRICT=1 to make skips fail).
CI= STRICT= bash scripts/check-infra.sh
cargo clippy --workspace --all-targets -- -D warnings
await_localstack
cargo test --workspace
