// KeyrotRotation as another team's CDK app uses it: aws-cdk-lib/assertions on the synthesized template, and
// cdk-nag's AwsSolutions pack over it. Run by `make check-infra` (node --test on the compiled dist/test/).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { KeyrotCode, KeyrotRotation, KeyrotRotationProps, codeFromDirectory } from '../lib/keyrot-rotation';
import { KeyrotStack } from '../lib/keyrot-stack';

// A placeholder bootstrap: synth only hashes and copies the asset.
const assetDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyrot-asset-'));
fs.writeFileSync(path.join(assetDir, 'bootstrap'), '#!/bin/sh\nexit 1\n');
/** New Code for every deployment: CDK ties an asset to one stack. */
const code = (): KeyrotCode => ({ rotator: lambda.Code.fromAsset(assetDir), graceKeeper: lambda.Code.fromAsset(assetDir) });

function withKeyrot(props: Partial<KeyrotRotationProps> = {}): { stack: Stack; keyrot: KeyrotRotation } {
  const stack = new Stack(new App(), 'Platform');
  const keyrot = new KeyrotRotation(stack, 'Keyrot', { code: code(), ...props });
  return { stack, keyrot };
}

/** The statements of the inline policy of the role whose logical id starts with `prefix`. */
function roleStatements(template: Template, prefix: string): Array<Record<string, unknown>> {
  const roles = template.findResources('AWS::IAM::Role');
  const id = Object.keys(roles).find((k) => k.startsWith(prefix));
  assert.ok(id, `no role ${prefix}* in ${Object.keys(roles).join(', ')}`);
  return roles[id].Properties.Policies[0].PolicyDocument.Statement;
}

function statement(statements: Array<Record<string, unknown>>, sid: string): Record<string, unknown> {
  const found = statements.find((s) => s['Sid'] === sid);
  assert.ok(found, `no statement ${sid}`);
  return found;
}

test('declares both functions, both tables, the topic, the alarms, the rule and the dashboard', () => {
  const template = Template.fromStack(withKeyrot().stack);
  template.resourceCountIs('AWS::Lambda::Function', 2);
  template.resourceCountIs('AWS::DynamoDB::Table', 2);
  template.resourceCountIs('AWS::SNS::Topic', 1);
  template.resourceCountIs('AWS::CloudWatch::Alarm', 3);
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  template.resourceCountIs('AWS::Events::Rule', 2);
  // No address given: no subscription, and no condition either.
  template.resourceCountIs('AWS::SNS::Subscription', 0);
  template.hasResourceProperties('AWS::Lambda::Function', {
    Runtime: 'provided.al2023',
    Architectures: ['arm64'],
    Timeout: 300,
    Environment: { Variables: Match.objectLike({ KEYROT_ADMIN_PREFIX: 'keyrot-admin/', KEYROT_DEFAULT_GRACE_HOURS: '24' }) },
  });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Timeout: 900,
    Environment: { Variables: Match.objectLike({ KEYROT_MANAGED_PREFIX: 'keyrot/' }) },
  });
  template.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: true });
  template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
  template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  template.hasResourceProperties('AWS::Events::Rule', {
    Targets: [Match.objectLike({ InputTransformer: Match.objectLike({ InputTemplate: Match.stringLikeRegexp('keyrot repair') }) })],
  });
});

test('the rotator writes only the managed prefix and the admin secrets their owner tagged for rotation', () => {
  const { stack } = withKeyrot({ managedSecretPrefix: 'team/keyrot/', adminSecretPrefix: 'team/admin/' });
  const template = Template.fromStack(stack);
  const statements = roleStatements(template, 'KeyrotRotatorRole');
  const rotate = JSON.stringify(stack.resolve(statement(statements, 'RotateManagedSecrets')['Resource']));
  assert.match(rotate, /:secret:team\/keyrot\/\*/);
  const deny = statement(statements, 'NeverWriteAdminSecrets');
  assert.equal(deny['Effect'], 'Deny');
  assert.ok((deny['Action'] as string[]).includes('secretsmanager:TagResource'));
  assert.ok(!('Condition' in deny), 'tags and rotation of every admin secret are denied outright');
  assert.match(JSON.stringify(deny['Resource']), /:secret:team\/admin\/\*/);
  const rotated = { 'secretsmanager:ResourceTag/keyrot-admin:rotated': 'true' };
  const unrotated = statement(statements, 'NeverWriteUnrotatedAdminSecrets');
  assert.equal(unrotated['Effect'], 'Deny');
  assert.ok((unrotated['Action'] as string[]).includes('secretsmanager:PutSecretValue'));
  assert.deepEqual((unrotated['Condition'] as Record<string, unknown>)['StringNotEquals'], rotated);
  const untag = statement(statements, 'ClearOneShotTags');
  assert.deepEqual(untag['Action'], 'secretsmanager:UntagResource');
  assert.deepEqual((untag['Condition'] as Record<string, unknown>)['ForAllValues:StringEquals'], {
    'aws:TagKeys': ['keyrot:next-grace-hours', 'keyrot:trigger', 'keyrot:one-shot-for'],
  });
  // Nothing in the rotator's policy allows a write beyond the managed prefix, but to a rotated credential.
  for (const s of statements) {
    const actions = ([] as string[]).concat(s['Action'] as string | string[]);
    if (s['Effect'] === 'Allow' && actions.some((a) => /PutSecretValue|UpdateSecretVersionStage|UntagResource/.test(a))) {
      const resource = JSON.stringify(s['Resource']);
      if (/team\/admin\//.test(resource)) {
        assert.deepEqual((s['Condition'] as Record<string, unknown>)['StringEquals'], rotated, `statement ${String(s['Sid'])}`);
      } else {
        assert.match(resource, /team\/keyrot\/\*/, `statement ${String(s['Sid'])}`);
      }
    }
  }
});

test('the audit events are append-only for both functions', () => {
  const template = Template.fromStack(withKeyrot().stack);
  for (const role of ['KeyrotRotatorRole', 'KeyrotGraceKeeperRole']) {
    const deny = statement(roleStatements(template, role), 'AuditEventsAppendOnly');
    assert.equal(deny['Effect'], 'Deny');
    for (const action of ['dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:DeleteTable']) {
      assert.ok((deny['Action'] as string[]).includes(action), `${role} may ${action}`);
    }
  }
});

test('an alert address subscribes it by email', () => {
  const template = Template.fromStack(withKeyrot({ alertEmail: 'ops@example.com' }).stack);
  template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
});

test('manage() schedules the rotator on a secret under the prefix, never at deploy', () => {
  const { stack, keyrot } = withKeyrot();
  const secret = new secretsmanager.Secret(stack, 'OpenAi', { secretName: 'keyrot/prod/openai' });
  keyrot.manage(secret, { schedule: 'rate(30 days)' });
  const template = Template.fromStack(stack);
  template.hasResource('AWS::SecretsManager::RotationSchedule', {
    Properties: {
      RotateImmediatelyOnUpdate: false,
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
      RotationLambdaARN: { 'Fn::GetAtt': [Match.stringLikeRegexp('^KeyrotRotatorFunction'), 'Arn'] },
    },
    // Secrets Manager calls the rotator when the schedule is created: the permission must exist first.
    DependsOn: Match.arrayWith([Match.stringLikeRegexp('^KeyrotRotatorInvokePermission')]),
  });
});

test('manage() refuses a secret the rotator may not write', () => {
  const { stack, keyrot } = withKeyrot();
  const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Db', 'prod/db');
  assert.throws(() => keyrot.manage(secret, { schedule: 'rate(30 days)' }), /prod\/db is not under the managed prefix keyrot\//);
});

test('a prefix IAM cannot express is refused, naming the property', () => {
  assert.throws(() => withKeyrot({ managedSecretPrefix: 'keyrot/*' }), /managedSecretPrefix "keyrot\/\*" is not valid/);
  assert.throws(() => withKeyrot({ defaultGraceHours: 'a day' }), /defaultGraceHours "a day" is not valid/);
});

test('two deployments in one stack do not collide when their names differ', () => {
  const stack = new Stack(new App(), 'Platform');
  new KeyrotRotation(stack, 'Prod', { code: code(), managedSecretPrefix: 'prod/', namePrefix: 'keyrot-prod' });
  new KeyrotRotation(stack, 'Staging', { code: code(), managedSecretPrefix: 'staging/', namePrefix: 'keyrot-staging' });
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::Lambda::Function', 4);
  template.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'keyrot-staging-grace-keeper' });
  template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/keyrot-prod-alerts' });
});

test('cdk-nag finds nothing unacknowledged in an app of its own', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyrot-nag-'));
  const app = new App({ outdir });
  const stack = new Stack(app, 'Platform');
  new KeyrotRotation(stack, 'Keyrot', { code: code(), managedSecretPrefix: 'team/keyrot/', adminSecretPrefix: 'team/admin/' });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }));
  // Synthesis throws when a validation plugin reports a violation.
  app.synth();
  const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
  const violations = report.pluginReports.flatMap((p: { violations: unknown[] }) => p.violations);
  assert.deepEqual(violations, []);
  fs.rmSync(outdir, { recursive: true, force: true });
});

test("the app's stack keeps template.yaml's logical ids and parameters", () => {
  const template = Template.fromStack(new KeyrotStack(new App(), 'Keyrot', { code: code() }));
  for (const [id, type] of [
    ['RotatorFunction', 'AWS::Lambda::Function'],
    ['GraceKeeperFunction', 'AWS::Lambda::Function'],
    ['AuditTable', 'AWS::DynamoDB::Table'],
    ['EventsTable', 'AWS::DynamoDB::Table'],
    ['AlertEmailSubscription', 'AWS::SNS::Subscription'],
    ['ExampleSecretRotation', 'AWS::SecretsManager::RotationSchedule'],
  ] as const) {
    assert.equal(template.toJSON().Resources[id]?.Type, type, id);
  }
  // The address is a parameter: the subscription exists only when it is not empty.
  template.hasResource('AWS::SNS::Subscription', { Condition: 'HasAlertEmail' });
  template.hasParameter('ManagedSecretPrefix', { Default: 'keyrot/' });
  template.hasOutput('DefaultGraceInHours', { Value: { Ref: 'DefaultGraceHours' } });
  template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
    DashboardBody: { 'Fn::Sub': [Match.stringLikeRegexp('DaysSinceRotation'), { RotatorFunction: { Ref: 'RotatorFunction' } , GraceKeeperFunction: { Ref: 'GraceKeeperFunction' } }] },
  });
});

test('codeFromDirectory says what to build when a zip is missing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyrot-zips-'));
  assert.throws(() => codeFromDirectory(dir), /keyrot-rotator\/bootstrap\.zip does not exist: run `make build`/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('runs both functions in the given subnets, with the network-interface permissions Lambda needs there', () => {
  const template = Template.fromStack(
    withKeyrot({ vpcSubnetIds: ['subnet-0a1b2c3d'], vpcSecurityGroupIds: ['sg-0a1b2c3d'] }).stack,
  );
  const functions = Object.values(template.findResources('AWS::Lambda::Function'));
  assert.equal(functions.length, 2);
  for (const fn of functions) {
    const [condition, config] = fn.Properties.VpcConfig['Fn::If'];
    assert.match(condition, /InVpc/);
    assert.deepEqual(config, { SubnetIds: ['subnet-0a1b2c3d'], SecurityGroupIds: ['sg-0a1b2c3d'] });
  }
  const roles = Object.values(template.findResources('AWS::IAM::Role'));
  const vpcPolicies = roles.map((role) => role.Properties.Policies[1]?.['Fn::If']?.[1]).filter(Boolean);
  assert.equal(vpcPolicies.length, 2, 'the rotator and the keeper each get the network-interface policy');
  assert.ok(vpcPolicies[0].PolicyDocument.Statement[0].Action.includes('ec2:CreateNetworkInterface'));
});

test('without subnets the functions run outside any VPC', () => {
  const template = Template.fromStack(withKeyrot().stack);
  for (const fn of Object.values(template.findResources('AWS::Lambda::Function'))) {
    assert.equal(fn.Properties.VpcConfig, undefined);
  }
  assert.deepEqual(Object.keys(template.toJSON().Conditions ?? {}), []);
});
