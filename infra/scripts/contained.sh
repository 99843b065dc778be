#!/usr/bin/env bash
# Runs a command as the first process of a PID namespace of its own (util-linux `unshare`), so
# that nothing it starts can signal a process outside it, and everything it started ends with it.
# The test tiers run the AWS Lambda Runtime Interface Emulator, which is made to reset a whole
# container by killing processes; contained, the worst it can do is fail the run.
#   usage: infra/scripts/contained.sh <command> [args...]
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then
  exec unshare --pid --fork --kill-child -- "$@"
else
  exec unshare --user --map-current-user --pid --fork --kill-child -- "$@"
fi
