#!/usr/bin/env bash
# Runs a command against a fresh moto_server on a free loopback port, with keyrot's resources created in
# it (the table, the alert topic, a Lambda function record for the rotator), then stops moto, pass or fail.
#
#   scripts/moto.sh cargo test
#
# The command sees AWS_ENDPOINT_URL, dummy credentials, KEYROT_AUDIT_TABLE, KEYROT_EVENTS_TABLE,
# KEYROT_ALERT_TOPIC_ARN and
# KEYROT_TEST_ROTATOR_ARN, and has the venv's `aws` on its PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/tools.sh"
export PATH="$root/.venv/bin:$PATH"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$(mktemp -t moto.XXXXXX.log)"
# Where moto's request recorder writes, when a test starts it (/moto-api/recorder/start-recording).
export MOTO_RECORDER_FILEPATH="$(mktemp -t moto-recording.XXXXXX)"
# moto_server, with its DynamoDB writes serialized (scripts/moto_server.py says why).
python3 "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log" "$MOTO_RECORDER_FILEPATH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true

for _ in $(seq 1 100); do
  if curl -fsS "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$log" >&2; echo "moto_server did not start" >&2; exit 1; fi
  sleep 0.1
done

# moto never runs a function's code without Docker: rotate-secret then only creates the AWSPENDING
# placeholder, and the caller plays Secrets Manager's part by invoking the four steps.
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"lambda":{"use_docker":false}}' \
  "$AWS_ENDPOINT_URL/moto-api/config" >/dev/null

"$root/scripts/moto-resources.sh" >/dev/null
eval "$("$root/scripts/moto-resources.sh" --env)"

set +e
"$@"
status=$?
set -e
exit "$status"
