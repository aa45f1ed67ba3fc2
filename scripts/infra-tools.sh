#!/usr/bin/env bash
# Installs what `make check-infra` needs, once, inside the repo: a Python venv .venv-infra with cfn-lint,
# checkov and the SAM transform (aws-sam-translator); .venv-sam with the SAM CLI (its boto3
# pin and checkov's cannot share a venv); and infra/node_modules (aws-cdk-lib, cdk-nag, the CDK
# CLI, and the devDependencies typescript and @types/node that type-check the app) from
# infra/package-lock.json. Stamp files record the pins, so a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-infra
PINS=(
  "cfn-lint==1.58.0"
  "checkov==3.3.30"
  "aws-sam-translator==1.115.0"
)

lock_sum=$(sha256sum infra/package-lock.json | cut -c1-12)
if [ ! -f "infra/node_modules/.keyrot-$lock_sum" ]; then
  # --include=dev: tsc is a devDependency, needed even where NODE_ENV=production would leave it out.
  (cd infra && npm ci --include=dev --no-audit --no-fund --loglevel=error)
  touch "infra/node_modules/.keyrot-$lock_sum"
  echo "infra-tools: installed infra/node_modules from infra/package-lock.json"
fi

stamp="$VENV/.keyrot-infra-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  touch "$stamp"
  echo "infra-tools: installed ${PINS[*]} into $VENV"
fi

# The SAM CLI, for `sam validate --lint` and `sam build`. It pins the same cfn-lint and translator as above.
SAM_VENV=.venv-sam
SAM_PIN="aws-sam-cli==1.170.0"
sam_stamp="$SAM_VENV/.keyrot-sam-$(printf '%s' "$SAM_PIN" | sha256sum | cut -c1-12)"
if [ ! -f "$sam_stamp" ]; then
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install --quiet --disable-pip-version-check "$SAM_PIN"
  touch "$sam_stamp"
  echo "infra-tools: installed $SAM_PIN into $SAM_VENV"
fi
