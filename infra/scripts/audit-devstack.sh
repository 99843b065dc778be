#!/usr/bin/env bash
# `make audit`: starts a devstack of its own (127.0.0.1, a free port, a fresh data directory),
# runs `opsctl audit` against it with the dev credentials, the template and the local secrets, and
# stops it. Extra arguments go to `opsctl audit` (e.g. --format html --out audit.html).
# Exit status: opsctl's (1 when an observable item fails).
set -euo pipefail
bin="${TARGET_DIR:-target}/debug"
work=$(mktemp -d)
"$bin/devstack" --port 0 --data-dir "$work/data" >"$work/ready" 2>"$work/devstack.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
	grep -q '"event":"ready"' "$work/ready" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "audit: the devstack did not start:" >&2
		cat "$work/devstack.log" >&2
		exit 1
	fi
	sleep 0.1
done
field() { python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$work/ready" "$1"; }
"$bin/opsctl" --data-dir "$work/data" audit \
	--api "$(field api)" --ca "$(field ca)" --credentials "$(field credentials)" \
	--template template.yaml --state "$@"
