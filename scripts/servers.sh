# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/localstack.sh: the servers they start for the tests
# (moto, LocalStack) listen on a free loopback port and are awaited the same way. Each function
# takes the Python to run (the caller's venv).

# Prints a TCP port on 127.0.0.1 that is free now (the caller's server must bind it next).
free_port() {
  "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# await_http PYTHON URL PID SECONDS [SERVICE...]
# Returns 0 once URL answers (with SERVICEs: once the LocalStack health document at URL says
# each is available or running), 1 when process PID ends first or SECONDS pass.
await_http() {
  "$1" - "${@:2}" <<'PY'
import json, os, sys, time, urllib.request
url, pid, seconds, services = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            states = json.load(answer).get("services", {}) if services else {}
        if all(states.get(s) in ("available", "running") for s in services):
            sys.exit(0)
    except (OSError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    time.sleep(0.1)
sys.exit(1)
PY
}
