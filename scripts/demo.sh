#!/usr/bin/env bash
# make demo: a key rotated end to end on this machine. moto stands in for AWS, `cargo lambda watch` runs
# the real keyrot-rotator binary behind a local Lambda Invoke API, and the AWS CLI plays Secrets Manager.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${KEYROT_DEMO_INNER:-}" ]; then
  KEYROT_DEMO_INNER=1 exec "$root/scripts/moto.sh" "$0" "$@"
fi
cd "$root"

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; Y=$'\e[33m'; D=$'\e[2m'; R=$'\e[0m'; else B= G= Y= D= R=; fi
stage() { printf '\n%s== %s ==%s\n' "$B" "$*" "$R"; }
say() { printf '  %s\n' "$*"; }
note() { printf '  %s%s%s\n' "$D" "$*" "$R"; }

work="$(mktemp -d -t keyrot-demo.XXXXXX)"
watch_pid=
finish() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  rm -rf "$work"
}
trap finish EXIT

stage "1. Stand-ins"
say "moto_server (Secrets Manager, DynamoDB, SNS, SQS, Lambda records) at $AWS_ENDPOINT_URL"
cargo build --quiet --bin keyrot-rotator
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo lambda watch --quiet --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" \
  --bin keyrot-rotator >"$work/rotator.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
say "the real keyrot-rotator binary runs under 'cargo lambda watch' at http://127.0.0.1:$port"

# The AWS CLI v1 sends SQS calls in us-east-1 to its legacy global endpoint unless told the URL.
sqs() { aws --endpoint-url "$AWS_ENDPOINT_URL" sqs "$@"; }
queue_url=$(sqs create-queue --queue-name keyrot-demo-alerts --query QueueUrl --output text)
queue_arn=$(sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
aws sns subscribe --topic-arn "$KEYROT_ALERT_TOPIC_ARN" --protocol sqs --notification-endpoint "$queue_arn" >/dev/null
say "alert topic subscribed by an SQS queue, to read alerts back"

stage "2. A managed secret"
name=demo/payments-api-key
first_key="sk_live_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
aws secretsmanager create-secret --name "$name" --tags Key=keyrot:grace-hours,Value=24 \
  --secret-string "{\"provider\":\"generic\",\"api_key\":\"$first_key\",\"generic\":{\"length\":32,\"prefix\":\"sk_live_\"},\"owner\":\"payments\"}" >/dev/null
say "$name: a generic API key (sk_live_...${first_key: -4}), grace period 24 h"

hint() { aws secretsmanager get-secret-value --secret-id "$name" --version-stage "$1" --query SecretString --output text \
  | python3 -c 'import json,sys; k=json.load(sys.stdin)["api_key"]; print(k[:8]+"..."+k[-4:])'; }
labels() {
  aws secretsmanager describe-secret --secret-id "$name" --query VersionIdsToStages --output json | python3 -c '
import json, sys
for version, stages in json.load(sys.stdin).items():
    if stages: print("    %s  %s" % (version[:8], " ".join(stages)))'
}
invoke() {
  local step=$1 token=$2
  aws lambda invoke --endpoint-url "http://127.0.0.1:$port" --function-name keyrot-rotator \
    --payload "{\"Step\":\"$step\",\"SecretId\":\"$name\",\"ClientRequestToken\":\"$token\"}" "$work/out.json" >/dev/null
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if "outcome" in d else 1)' "$work/out.json"; then
    printf '  %s%-13s%s %s\n' "$G" "$step" "$R" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outcome"])' "$work/out.json")"
  else
    printf '  %s%-13s failed:%s %s\n' "$Y" "$step" "$R" "$(cat "$work/out.json")"; return 1
  fi
}
rotate() {
  aws secretsmanager rotate-secret --secret-id "$name" --rotation-lambda-arn "$KEYROT_TEST_ROTATOR_ARN" \
    --rotation-rules AutomaticallyAfterDays=30 >/dev/null
  token=$(aws secretsmanager describe-secret --secret-id "$name" --query VersionIdsToStages --output json \
    | python3 -c 'import json,sys; print([v for v, s in json.load(sys.stdin).items() if "AWSPENDING" in s][0])')
  say "rotate-secret created the AWSPENDING version ${token:0:8}"
  note "(on AWS, Secrets Manager now invokes the Lambda with each step by itself; here the AWS CLI does it)"
  for step in createSecret setSecret testSecret finishSecret; do invoke "$step" "$token"; done
}

stage "3. Rotation"
rotate
say "labels now:"; labels
say "AWSCURRENT holds $(hint AWSCURRENT); AWSPREVIOUS keeps $(hint AWSPREVIOUS) alive through the grace period"

stage "4. Secrets Manager repeats a step: nothing happens twice"
invoke createSecret "$token"
invoke finishSecret "$token"

stage "5. Audit trail (DynamoDB)"
aws dynamodb query --table-name "$KEYROT_AUDIT_TABLE" --key-condition-expression "pk = :pk" \
  --expression-attribute-values "{\":pk\":{\"S\":\"SECRET#$name\"}}" --output json | python3 -c '
import json, sys
for item in json.load(sys.stdin)["Items"]:
    get = lambda k: next(iter(item.get(k, {"S": ""}).values()))
    sk = get("sk")
    if sk.startswith("EVENT#"):
        print("    %s  %-12s %-9s trigger=%s old=...%s new=...%s" % (get("at")[11:23], get("action"), get("outcome"), get("trigger"), get("old_key_hint"), get("new_key_hint")))
    elif sk.startswith("REVOKE#"):
        print("    revocation of %s (%s): %s, due %s" % (get("hint"), sk[7:15], get("status"), get("due")))'

stage "6. Alerts received (SNS -> SQS)"
sqs receive-message --queue-url "$queue_url" --max-number-of-messages 10 --output json | python3 -c '
import json, sys
for m in json.load(sys.stdin).get("Messages", []):
    body = json.loads(m["Body"])
    print("    [%s] %s" % (body["MessageAttributes"]["event"]["Value"], body["Subject"]))'

stage "7. Emergency rotation: the old key dies now"
aws secretsmanager tag-resource --secret-id "$name" --tags Key=keyrot:next-grace-hours,Value=0 Key=keyrot:trigger,Value=emergency
say "tagged keyrot:next-grace-hours=0 (one rotation only; the permanent 24 h policy stays)"
rotate
say "labels now:"; labels
aws dynamodb query --table-name "$KEYROT_AUDIT_TABLE" --key-condition-expression "pk = :pk AND begins_with(sk, :r)" \
  --expression-attribute-values "{\":pk\":{\"S\":\"SECRET#$name\"},\":r\":{\"S\":\"REVOKE#\"}}" --output json | python3 -c '
import json, sys
for item in json.load(sys.stdin)["Items"]:
    get = lambda k: next(iter(item.get(k, {"S": ""}).values()))
    print("    old key %s: %s" % (get("hint"), get("status")))'
note "generic keys have no provider to revoke them at: they are retired; OpenAI and Anthropic keys are revoked"
say "tags left: $(aws secretsmanager describe-secret --secret-id "$name" --query 'Tags[].Key' --output text)"

stage "Done"
say "the rotator's own log (JSON lines, no key values) is what CloudWatch would show; everything started is stopped now"
