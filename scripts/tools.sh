#!/usr/bin/env bash
# Installs what the tests and the demo need, once: into .venv moto's server, the AWS CLI and cargo-lambda;
# into tools/node_modules Stoplight Prism. Stamp files record the pinned versions, so a second run costs
# nothing. Nothing is installed outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PINS=(
  "moto[server]==5.2.5"
  "awscli==1.46.3"
  # The demo's application pool (scripts/demo.py) talks to PostgreSQL with it.
  "psycopg[binary]==3.2.10"
)
# cargo-lambda's wheel carries its binary; its Python dependencies (zig) are only for cross builds.
NO_DEPS_PINS=(
  "cargo-lambda==1.9.2"
)
# Node tools (Stoplight Prism for the contract tests), pinned by tools/package-lock.json.
lock_sum=$(sha256sum tools/package-lock.json | cut -c1-12)
if [ ! -f "tools/node_modules/.keyrot-$lock_sum" ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  touch "tools/node_modules/.keyrot-$lock_sum"
fi

stamp="$VENV/.keyrot-tools-$(printf '%s\n' "${PINS[@]}" "${NO_DEPS_PINS[@]}" | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then
  exit 0
fi

python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "${NO_DEPS_PINS[@]}"
touch "$stamp"
echo "tools: installed ${PINS[*]} ${NO_DEPS_PINS[*]} into $VENV"
