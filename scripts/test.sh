#!/usr/bin/env bash
# The project's test command: formatting, lints and every test, against a local moto server.
#
#   bash scripts/test.sh                           fmt --check, clippy -D warnings, cargo test --workspace
#   bash scripts/test.sh -p common --test moto_s3  only `cargo test <args>`, still with moto
#
# Needs a Rust toolchain and Python 3 with venv/pip. Creates .venv in the repository with the
# pinned tools of scripts/requirements-test.txt, starts moto on a free loopback port for the
# duration of the run, and stops it on exit whatever the outcome.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

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

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
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
if ! "$venv/bin/python" - "$endpoint" "$moto_pid" <<'PY'
import os, sys, time, urllib.request
endpoint, pid = sys.argv[1], int(sys.argv[2])
for _ in range(300):
    try:
        urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(1)
        time.sleep(0.1)
sys.exit(1)
PY
then
  echo "test.sh: moto did not start on $endpoint; its log:" >&2
  cat "$moto_log" >&2
  exit 1
fi
echo "test.sh: moto on $endpoint"

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
  cargo test "$@"
  exit
fi

cargo fmt --all --check
# The deployment files: terraform fmt/validate/test, checkov, compose (a missing tool is a
# reported skip here; run it with STRICT=1 to make skips fail).
CI= STRICT= bash scripts/check-infra.sh
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
