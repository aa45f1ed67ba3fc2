#!/usr/bin/env node
// The CDK app: one environment-agnostic stack (account and region come from the deploying credentials), so
// `cdk synth` needs no AWS access. cdk-nag's AwsSolutions pack checks it on every synth.
//
//   KEYROT_LAMBDA_DIR  where `make build` put the zips (default ../target/lambda): <dir>/<bin>/bootstrap.zip
//   -c stackName=NAME  the stack's name (default keyrot); functions are named NAME-rotator, NAME-grace-keeper
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { codeFromDirectory } from '../lib/keyrot-rotation';
import { KeyrotStack } from '../lib/keyrot-stack';

const app = new App();
const stackName: string = app.node.tryGetContext('stackName') ?? 'keyrot';
// Compiled to dist/bin/, two levels below infra/.
const lambdaDir = path.resolve(process.env['KEYROT_LAMBDA_DIR'] ?? path.join(__dirname, '..', '..', '..', 'target', 'lambda'));

new KeyrotStack(app, 'Keyrot', {
  stackName,
  code: codeFromDirectory(lambdaDir),
  analyticsReporting: false,
  description:
    'keyrot: zero-downtime rotation of LLM provider API keys in Secrets Manager. The rotation Lambda, the grace keeper (every 15 minutes), the audit table, the encrypted alert topic, alarms and the rotation-failure rule. template.yaml (SAM) declares the same resources; `make check-infra` compares the two.',
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
