#!/usr/bin/env bash
# make check-infra: the deployment templates, checked offline (no AWS account, no network beyond the package
# registries the first run installs from).
#
#   1. cfn-lint template.yaml: no error and no warning.
#   2. checkov on template.yaml: no failed check; every suppression gives a reason, is still needed, and is
#      listed in docs/deploy.md.
#   3. The CDK construct and app (TypeScript, strict) compiled with tsc, and their aws-cdk-lib/assertions
#      tests (infra/test/, node --test): KeyrotRotation as another app would use it.
#   4. cdk synth of infra/ with cdk-nag's AwsSolutions pack: no unacknowledged finding; every
#      acknowledgment gives a reason and is listed in docs/deploy.md; cfn-lint on the synthesized template.
#      Synthesized against placeholder bootstrap zips, so no release build is needed.
#   5. SAM (through the real SAM transform) and CDK declare the same resources, properties, IAM actions,
#      parameters and outputs.
#   6. The dashboard shows only metrics the functions emit; the rotation-failure message is complete.
#   7. `sam validate --lint`, and `sam build` through the Makefile's build targets, fed placeholder zips
#      through KEYROT_LAMBDA_DIR as a release's zips would be (the arm64 compile itself is `make build`).
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

step "3. tsc infra/ (strict) and the construct's tests"
(
  cd infra
  rm -rf dist
  node_modules/.bin/tsc --version
  node_modules/.bin/tsc --project tsconfig.json --pretty false
  echo "tsc: no type errors"
  node --test --test-reporter=spec dist/test/
)

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
  # cdk.json's build step compiled dist/ in step 3 already; synth runs the compiled app.
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

step "7. sam validate --lint and sam build (the released-zips path)"
(
  unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  export SAM_CLI_TELEMETRY=0 KEYROT_LAMBDA_DIR="$work/lambda"
  "$root/.venv-sam/bin/sam" --version
  "$root/.venv-sam/bin/sam" validate --lint --region us-east-1 --template template.yaml
  "$root/.venv-sam/bin/sam" build --build-in-source --region us-east-1 --template template.yaml --build-dir "$work/sam-build" \
    --cache-dir "$work/sam-cache"
)
"$venv/python" - "$work/sam-build" "$work/lambda" <<'PY'
import sys, zipfile
from pathlib import Path
from samtranslator.yaml_helper import yaml_parse
build, zips = Path(sys.argv[1]), Path(sys.argv[2])
resources = yaml_parse((build / "template.yaml").read_text())["Resources"]
for function, bin in [("RotatorFunction", "keyrot-rotator"), ("GraceKeeperFunction", "keyrot-grace-keeper")]:
    code_uri = resources[function]["Properties"]["CodeUri"]
    bootstrap = build / code_uri / "bootstrap"
    expected = zipfile.ZipFile(zips / bin / "bootstrap.zip").read("bootstrap")
    assert bootstrap.read_bytes() == expected, f"{bootstrap} is not {bin}'s bootstrap"
    assert bootstrap.stat().st_mode & 0o111, f"{bootstrap} is not executable"
    print(f"sam build: {function} -> {code_uri}/bootstrap ({bin})")
PY

printf '\ncheck-infra: all checks passed in %ss\n' "$((SECONDS - started))"
