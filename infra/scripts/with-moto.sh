#!/usr/bin/env bash
# Runs a command with a private moto server (DynamoDB, Secrets Manager) on 127.0.0.1 and a free
# port, exporting AWS_ENDPOINT_URL and dummy credentials to it; moto is stopped on every exit path.
#   usage: infra/scripts/with-moto.sh <command> [args...]
set -euo pipefail

venv="${VENV:-.venv}"
python="$venv/bin/python"
[ -x "$venv/bin/moto_server" ] || { echo "with-moto: moto not found in $venv; run 'make venv' first" >&2; exit 2; }
# moto-atomic.py serves moto with each request atomic, as AWS serves each call (see its docstring).
atomic="$(dirname "$0")/moto-atomic.py"

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log="${TMPDIR:-/tmp}/moto-$port.log"
"$python" "$atomic" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$moto_pid" 2>/dev/null || { echo "with-moto: moto exited at start:" >&2; cat "$log" >&2; exit 2; }
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE
echo "with-moto: moto on $AWS_ENDPOINT_URL" >&2
"$@"
