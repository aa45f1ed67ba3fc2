#!/usr/bin/env bash
# Creates keyrot's AWS resources in moto (idempotent). With --env, prints the exports that name them.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?point AWS_ENDPOINT_URL at moto_server}"
TABLE=${KEYROT_AUDIT_TABLE:-keyrot-audit}
EVENTS=${KEYROT_EVENTS_TABLE:-keyrot-events}
TOPIC=keyrot-alerts
FUNCTION=keyrot-rotator
ACCOUNT=123456789012

if [ "${1:-}" = "--env" ]; then
  echo "export KEYROT_AUDIT_TABLE=$TABLE"
  echo "export KEYROT_EVENTS_TABLE=$EVENTS"
  echo "export KEYROT_ALERT_TOPIC_ARN=arn:aws:sns:$AWS_REGION:$ACCOUNT:$TOPIC"
  echo "export KEYROT_TEST_ROTATOR_ARN=arn:aws:lambda:$AWS_REGION:$ACCOUNT:function:$FUNCTION"
  exit 0
fi

# The state table (docs/tables.md) and the audit events' own table, laid out as template.yaml has them.
if ! aws dynamodb describe-table --table-name "$TABLE" >/dev/null 2>&1; then
  aws dynamodb create-table --table-name "$TABLE" --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
      AttributeName=gsi2pk,AttributeType=S AttributeName=gsi2sk,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --global-secondary-indexes \
      '[{"IndexName":"gsi2","KeySchema":[{"AttributeName":"gsi2pk","KeyType":"HASH"},{"AttributeName":"gsi2sk","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}]'
fi
if ! aws dynamodb describe-table --table-name "$EVENTS" >/dev/null 2>&1; then
  aws dynamodb create-table --table-name "$EVENTS" --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
      AttributeName=gsi1pk,AttributeType=S AttributeName=gsi1sk,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --global-secondary-indexes \
      '[{"IndexName":"gsi1","KeySchema":[{"AttributeName":"gsi1pk","KeyType":"HASH"},{"AttributeName":"gsi1sk","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}]'
fi
aws sns create-topic --name "$TOPIC"

# rotate-secret accepts only the ARN of a function that exists; its code is never run by moto.
if ! aws lambda get-function --function-name "$FUNCTION" >/dev/null 2>&1; then
  aws iam create-role --role-name keyrot-rotator \
    --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
  zip="$(mktemp -t bootstrap.XXXXXX.zip)"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("bootstrap", "#!/bin/sh\n")' "$zip"
  aws lambda create-function --function-name "$FUNCTION" --runtime provided.al2023 --handler bootstrap \
    --role "arn:aws:iam::$ACCOUNT:role/keyrot-rotator" --zip-file "fileb://$zip" --architectures arm64
  rm -f "$zip"
fi
