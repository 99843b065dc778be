#!/usr/bin/env bash
# Unpacks a RustSec advisory-database snapshot where cargo-deny looks for it offline.
#
#   infra/scripts/advisory-db.sh <snapshot.tar.gz> <db-path>
#
# cargo-deny keeps each advisory database in <db-path>/<name>-<hash of its URL>; for the default
# https://github.com/rustsec/advisory-db that is advisory-db-3157b0e258782691. It reads the
# database's date from its git HEAD, so the snapshot becomes a one-commit repository dated the
# day in its file name (rustsec-advisory-db-YYYY-MM-DD.tar.gz). Idempotent: a database already
# unpacked from the same snapshot is left as it is.
set -euo pipefail

archive=$1
db_path=$2
dir="$db_path/advisory-db-3157b0e258782691"
stamp="$dir/.snapshot"
name=$(basename "$archive")
day=$(sed -E 's/.*([0-9]{4}-[0-9]{2}-[0-9]{2}).*/\1/' <<<"$name")

if [[ -f "$stamp" && "$(cat "$stamp")" == "$name" ]]; then
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
tar -xzf "$archive" -C "$dir" --strip-components=1
git -C "$dir" init -q
git -C "$dir" add -A
GIT_AUTHOR_DATE="${day}T00:00:00Z" GIT_COMMITTER_DATE="${day}T00:00:00Z" \
  git -C "$dir" -c user.name=snapshot -c user.email=snapshot@localhost \
  commit -q -m "RustSec advisory database snapshot $day"
echo "$name" >"$stamp"
