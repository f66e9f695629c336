#!/usr/bin/env bash
# Offline checks of the deployment files (infra/, docker-compose.yml, deploy/compose/):
#   1. terraform fmt -check                                  (needs terraform)
#   2. terraform validate + terraform test with a mocked AWS provider, in a scratch copy, of the
#      module and of the example root module (needs the AWS provider in a local plugin
#      directory: $TF_PLUGIN_DIR, default /opt/tf-plugins)
#   3. checkov static security scan                          (installed on first use, see below)
#   4. docker-compose config -q                              (needs docker-compose 1.29+)
#   5. sh -n on the compose scripts
# The invariant tests (tests/infra-check) run with `cargo test`; this script is what they
# cannot do. A check whose tool is missing is reported as skipped; set CI=1 (or STRICT=1) to make
# a skip fail. Exit status: 0 when every check that ran passed.
#
# checkov lives in its own virtualenv ($CHECKOV_VENV, default ~/.cache/tascomi/checkov-venv),
# not in .venv: it pins boto3/botocore versions that conflict with moto's.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export TF_CLI_CONFIG_FILE=/dev/null
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
CHECKOV_VENV="${CHECKOV_VENV:-$HOME/.cache/tascomi/checkov-venv}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
strict="${STRICT:-${CI:-}}"

failures=0
skips=0
pass() { echo "ok      $1"; }
fail() { echo "FAILED  $1"; failures=$((failures + 1)); }
skip() { echo "skipped $1"; skips=$((skips + 1)); }

# 1. Formatting.
if command -v terraform >/dev/null; then
  if terraform fmt -check -recursive -diff infra; then
    pass "terraform fmt"
  else
    fail "terraform fmt (run: terraform fmt -recursive infra)"
  fi
else
  skip "terraform fmt: terraform is not on PATH"
fi

# 2. Validate and test against a mocked provider, in a scratch copy so that infra/ gets no
#    .terraform folder: the module (infra/modules/tascomi-pipeline) and the example root module
#    calling it (infra/envs/example). The copy keeps the layout the default pipeline_file path
#    expects. The example keeps its committed .terraform.lock.hcl, so init also proves the lock
#    file matches the provider it was tested with.
terraform_dirs=(infra/modules/tascomi-pipeline infra/envs/example)
if ! command -v terraform >/dev/null; then
  skip "terraform validate/test: terraform is not on PATH"
elif ! ls "$TF_PLUGIN_DIR"/registry.terraform.io/hashicorp/aws/*/* >/dev/null 2>&1; then
  skip "terraform validate/test: no AWS provider in $TF_PLUGIN_DIR (set TF_PLUGIN_DIR)"
else
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  cp -r infra "$scratch/infra"
  find "$scratch/infra" -name .terraform -type d -prune -exec rm -rf {} +
  rm -f "$scratch/infra/modules/tascomi-pipeline/.terraform.lock.hcl"
  cp pipeline.yaml "$scratch/pipeline.yaml"
  for dir in "${terraform_dirs[@]}"; do
    log="$scratch/$(basename "$dir")"
    if ! (cd "$scratch/$dir" && terraform init -backend=false -input=false -no-color \
        -plugin-dir="$TF_PLUGIN_DIR" >"$log.init.log" 2>&1); then
      cat "$log.init.log"
      fail "terraform init $dir (plugin dir $TF_PLUGIN_DIR)"
      continue
    fi
    if (cd "$scratch/$dir" && terraform validate -no-color >"$log.validate.log" 2>&1); then
      pass "terraform validate $dir"
    else
      cat "$log.validate.log"
      fail "terraform validate $dir"
    fi
    if (cd "$scratch/$dir" && terraform test -no-color >"$log.test.log" 2>&1); then
      pass "terraform test $dir ($(grep -c '^  run .*\.\.\. pass$' "$log.test.log") runs)"
    else
      grep -v '^  - ' "$log.test.log"
      fail "terraform test $dir"
    fi
  done
fi

# 3. Static security scan. Findings accepted on purpose are skipped in the code with a
#    `#checkov:skip=<id>:<reason>` comment beside the resource.
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  echo "installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  if ! { python3 -m venv "$CHECKOV_VENV" \
      && "$CHECKOV_VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"; } >/dev/null 2>&1; then
    rm -rf "$CHECKOV_VENV"
  fi
fi
if [ -x "$CHECKOV_VENV/bin/checkov" ]; then
  if "$CHECKOV_VENV/bin/checkov" -d infra --framework terraform --skip-download --compact --quiet; then
    pass "checkov"
  else
    fail "checkov"
  fi
else
  skip "checkov: could not install it (offline?) into $CHECKOV_VENV"
fi

# 4. The compose file, as docker-compose reads it.
if command -v docker-compose >/dev/null; then
  if docker-compose -f docker-compose.yml config -q; then
    pass "docker-compose config"
  else
    fail "docker-compose config"
  fi
else
  skip "docker-compose config: docker-compose is not on PATH (apt-get install docker-compose)"
fi

# 5. The compose scripts parse.
scripts_ok=1
for script in deploy/compose/*.sh; do
  sh -n "$script" || scripts_ok=0
done
if [ "$scripts_ok" = 1 ]; then pass "sh -n deploy/compose/*.sh"; else fail "sh -n deploy/compose/*.sh"; fi

echo "check-infra: $failures failed, $skips skipped"
if [ "$failures" -gt 0 ]; then
  exit 1
fi
if [ -n "$strict" ] && [ "$skips" -gt 0 ]; then
  echo "check-infra: skips are failures under CI/STRICT"
  exit 1
fi
exit 0
