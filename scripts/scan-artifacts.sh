#!/usr/bin/env bash
# Checks that the Lambda zips hold none of the key values the tests use: every key-shaped literal in the
# sources (test keys included) is searched for in each unzipped binary.
#   scripts/scan-artifacts.sh target/lambda/*/bootstrap.zip
set -euo pipefail
cd "$(dirname "$0")/.."
keys="$(grep -rhoE '"(sk-[A-Za-z0-9_-]{12,}|sk_live_[A-Za-z0-9]{8,}|gk-[A-Za-z0-9]{8,})' src tests sim/src sim/tests \
  | tr -d '"' | sort -u)"
count=$(printf '%s\n' "$keys" | grep -c . || true)
status=0
for zip in "$@"; do
  binary="$(mktemp)"
  unzip -p "$zip" bootstrap > "$binary"
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    if grep -qF -- "$key" "$binary"; then
      echo "scan: $zip contains the test key literal ${key:0:6}..." >&2
      status=1
    fi
  done <<< "$keys"
  rm -f "$binary"
  [ "$status" -eq 0 ] && echo "scan: $zip holds none of the $count key literals found in the sources"
done
exit "$status"
