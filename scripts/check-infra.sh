#!/usr/bin/env bash
# make check-infra: the deployment templates, checked offline (no AWS account, no network beyond the package
# registries the first run installs from).
#
#   1. cfn-lint template.yaml: no error and no warning.
#   2. checkov on template.yaml: no failed check; every suppression gives a reason, is still needed, and is
#      listed in docs/deploy.md.
#   3. tsc on infra/ (infra/tsconfig.json: checkJs, strict, noEmit): the CDK app, plain JavaScript with JSDoc
#      types, has no type error against aws-cdk-lib's and Node's type declarations.
#   4. cdk synth of infra/ with cdk-nag's AwsSolutions pack: no unacknowledged finding; every
#      acknowledgment gives a reason and is listed in docs/deploy.md; cfn-lint on the synthesized template.
#      Synthesized against placeholder bootstrap zips, so no release build is needed.
#   5. SAM (through the real SAM transform) and CDK declare the same resources, properties, IAM actions,
#      parameters and outputs.
#   6. The dashboard shows only metrics the functions emit; the rotation-failure message is complete.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/infra-tools.sh"
venv="$root/.venv-infra/bin"

work="$(mktemp -d -t keyrot-infra.XXXXXX)"
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s ==\n' "$*"; }
started=$SECONDS

step "1. cfn-lint template.yaml"
"$venv/cfn-lint" --version
"$venv/cfn-lint" -- template.yaml
echo "cfn-lint: no errors, no warnings"

step "2. checkov template.yaml"
"$venv/python" infra/checks/checkov_template.py template.yaml docs/deploy.md

step "3. tsc infra/ (checkJs, strict)"
(
  cd infra
  node_modules/.bin/tsc --version
  node_modules/.bin/tsc --project tsconfig.json --pretty false
)
echo "tsc: no type errors"

step "4. cdk synth infra/ (cdk-nag AwsSolutions), offline"
# Placeholder zips where `make build` puts the real ones: synth only hashes and copies them.
for bin in keyrot-rotator keyrot-grace-keeper; do
  mkdir -p "$work/lambda/$bin"
  "$venv/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("bootstrap", "#!/bin/sh\nexit 1\n")' \
    "$work/lambda/$bin/bootstrap.zip"
done
(
  cd infra
  # Offline: no credentials (so the CLI asks STS for no default account), no instance metadata, no
  # version check, notices or telemetry, and no context lookups.
  unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  export CDK_DISABLE_VERSION_CHECK=true CDK_DISABLE_CLI_TELEMETRY=true
  export KEYROT_LAMBDA_DIR="$work/lambda"
  node_modules/.bin/cdk --version
  node_modules/.bin/cdk synth --quiet --no-notices --no-version-reporting --no-lookups --ci \
    --output "$work/cdk.out"
)
template="$work/cdk.out/Keyrot.template.json"
"$venv/python" infra/checks/nag_acknowledgments.py "$template" "$work/cdk.out/validation-report.json" docs/deploy.md
# W3005: CDK itself adds DependsOn on each function's role, which its Role property already implies.
"$venv/cfn-lint" --ignore-checks W3005 -- "$template"
echo "cfn-lint on the synthesized CDK template: no errors, no warnings"

step "5. SAM and CDK declare the same deployment"
"$venv/python" infra/checks/compare_templates.py template.yaml "$template"

step "6. the dashboard and the rotation-failure message"
"$venv/python" infra/checks/dashboard.py template.yaml src/ports/mod.rs

printf '\ncheck-infra: all checks passed in %ss\n' "$((SECONDS - started))"
