#!/usr/bin/env bash
# make demo: an OpenAI key with a Vercel target, and a PostgreSQL password under a live pool, rotated with zero
# downtime on this machine — moto for AWS, a PostgreSQL server (scripts/postgres.sh),
# keyrot-sim for OpenAI and Vercel, `cargo lambda watch` running the real Lambda binaries, the AWS CLI
# playing Secrets Manager. The same run is the end-to-end test: every claim it prints is checked.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d -t keyrot-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
export KEYROT_DEMO_WORK="$work"
"$root/scripts/moto.sh" "$root/scripts/postgres.sh" "$root/.venv/bin/python" "$root/scripts/demo.py"
