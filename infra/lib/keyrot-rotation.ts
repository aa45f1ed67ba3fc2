// KeyrotRotation: keyrot's deployment as one construct a CDK app imports, the same resources template.yaml
// declares for SAM. `lib/keyrot-stack.ts` is the app's stack around it, with template.yaml's parameters.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Aws, CfnCondition, CfnElement, CfnResource, Duration, Fn, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, IConstruct } from 'constructs';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';
import { DASHBOARD_BODY, FAILURE_MESSAGE } from './texts';

/** The two functions' code: the arm64 `bootstrap` zips of `make build` or of a release. */
export interface KeyrotCode {
  readonly rotator: lambda.Code;
  readonly graceKeeper: lambda.Code;
}

/**
 * The zips in a directory laid out as `make build` and the release write it: `<dir>/keyrot-rotator/bootstrap.zip`
 * and `<dir>/keyrot-grace-keeper/bootstrap.zip`.
 */
export function codeFromDirectory(dir: string): KeyrotCode {
  const zip = (bin: string): lambda.Code => {
    const file = path.join(dir, bin, 'bootstrap.zip');
    if (!fs.existsSync(file)) {
      throw new Error(`${file} does not exist: run \`make build\` first, or point at the release's zips (KEYROT_LAMBDA_DIR)`);
    }
    return lambda.Code.fromAsset(file);
  };
  return { rotator: zip('keyrot-rotator'), graceKeeper: zip('keyrot-grace-keeper') };
}

export interface KeyrotRotationProps {
  /** The functions' code (see `codeFromDirectory`). */
  readonly code: KeyrotCode;
  /** Name prefix of the secrets keyrot rotates: the rotator may write and re-label only these. @default 'keyrot/' */
  readonly managedSecretPrefix?: string;
  /** Name prefix of the secrets holding provider admin keys and platform tokens (read only). @default 'keyrot-admin/' */
  readonly adminSecretPrefix?: string;
  /** Hours an old key stays valid when its secret has no keyrot:grace-hours tag (0 revokes at once). @default '24' */
  readonly defaultGraceHours?: string;
  /** An address subscribed to the alert topic by email; an empty string (say, an empty parameter) subscribes none. */
  readonly alertEmail?: string;
  /** Days the functions' logs are kept. @default 365 */
  readonly logRetentionDays?: number;
  /**
   * Private subnets both functions run in, to reach a database in a VPC; the subnets must reach the providers and
   * AWS through a NAT gateway or VPC endpoints (docs/deploy.md). May be a list token (a CommaDelimitedList
   * parameter): an empty list at deploy time runs the functions outside any VPC. @default outside any VPC
   */
  readonly vpcSubnetIds?: string[];
  /** The functions' security groups when `vpcSubnetIds` is given. @default none */
  readonly vpcSecurityGroupIds?: string[];
  /** Start of the functions', log groups' and key alias's names. @default the stack's name */
  readonly namePrefix?: string;
  /**
   * Give every resource the logical id template.yaml gives it (`RotatorFunction`, `AuditTable`, ...), so that a
   * stack deployed with SAM can move to CDK without CloudFormation replacing its tables. At most one such
   * construct per stack.
   * @default false: ids derived from the construct's path, as CDK names them
   */
  readonly samLogicalIds?: boolean;
}

export interface ManageOptions {
  /** A rotation schedule Secrets Manager understands: `rate(30 days)` or `cron(...)`. */
  readonly schedule: string;
}

/** Every Secrets Manager action that changes a secret: denied to both functions on the admin secrets. */
const ADMIN_SECRET_WRITES = [
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecret',
  'secretsmanager:UpdateSecretVersionStage',
  'secretsmanager:DeleteSecret',
  'secretsmanager:RestoreSecret',
  'secretsmanager:TagResource',
  'secretsmanager:UntagResource',
  'secretsmanager:RotateSecret',
  'secretsmanager:CancelRotateSecret',
  'secretsmanager:PutResourcePolicy',
  'secretsmanager:DeleteResourcePolicy',
  'secretsmanager:ReplicateSecretToRegions',
  'secretsmanager:RemoveRegionsFromReplication',
  'secretsmanager:StopReplicationToReplica',
];
/** The writes a rotation makes, which the rotator makes on keyrot's own credentials too. */
const ROTATION_WRITES = ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage', 'secretsmanager:UntagResource'];
/** The tag by which an admin secret's owner lets keyrot rotate it (docs/security.md). */
const ROTATED_TAG = { 'secretsmanager:ResourceTag/keyrot-admin:rotated': 'true' };
/** The tags the rotator clears when a rotation has used them (keyrot rotate's one-shot tags). */
const ONE_SHOT_TAGS = ['keyrot:next-grace-hours', 'keyrot:trigger', 'keyrot:one-shot-for'];
const SECRET_PREFIX = /^[A-Za-z0-9/_+=.@-]+$/;
const HOURS = /^[0-9]+(\.[0-9]+)?$/;

/**
 * keyrot in an AWS account: the rotation Lambda Secrets Manager calls, the grace keeper every 15 minutes, the
 * state and audit tables, the encrypted alert topic, alarms, the rotation-failure rule, a dashboard and the
 * CLI's read policy.
 *
 * ```ts
 * const keyrot = new KeyrotRotation(this, 'Keyrot', { code: codeFromDirectory('dist') });
 * keyrot.manage(mySecret, { schedule: 'rate(30 days)' });
 * ```
 */
export class KeyrotRotation extends Construct {
  readonly rotator: lambda.Function;
  readonly graceKeeper: lambda.Function;
  readonly alertTopic: sns.Topic;
  readonly alertKey: kms.Key;
  /** The state table: step guards, revocations, key records, deployments (docs/tables.md). */
  readonly stateTable: dynamodb.Table;
  /** The audit events, append-only for the functions. */
  readonly eventsTable: dynamodb.Table;
  /** What `keyrot status`, `audit` and `report` need; it reads the managed secrets' values. */
  readonly cliReadPolicy: iam.ManagedPolicy;
  readonly managedSecretPrefix: string;
  readonly adminSecretPrefix: string;
  /** The grace, in hours, of a secret with no keyrot:grace-hours tag. */
  readonly defaultGraceHours: string;
  private readonly rotatorInvokePermission: lambda.CfnPermission;
  private readonly samLogicalIds: boolean;

  constructor(scope: Construct, id: string, props: KeyrotRotationProps) {
    super(scope, id);
    this.samLogicalIds = props.samLogicalIds ?? false;
    this.managedSecretPrefix = checked('managedSecretPrefix', props.managedSecretPrefix ?? 'keyrot/', SECRET_PREFIX);
    this.adminSecretPrefix = checked('adminSecretPrefix', props.adminSecretPrefix ?? 'keyrot-admin/', SECRET_PREFIX);
    this.defaultGraceHours = checked('defaultGraceHours', props.defaultGraceHours ?? '24', HOURS);
    const namePrefix = props.namePrefix ?? Aws.STACK_NAME;

    this.alertKey = this.createAlertKey(namePrefix);
    this.alertTopic = this.createAlertTopic(props.alertEmail);
    this.stateTable = this.createStateTable();
    this.eventsTable = this.createEventsTable();
    const environment = {
      KEYROT_AUDIT_TABLE: this.stateTable.tableName,
      KEYROT_EVENTS_TABLE: this.eventsTable.tableName,
      KEYROT_ALERT_TOPIC_ARN: this.alertTopic.topicArn,
      KEYROT_DEFAULT_GRACE_HOURS: this.defaultGraceHours,
      // Where admin keys and tokens live: a value naming one elsewhere is refused (docs/security.md).
      KEYROT_ADMIN_PREFIX: this.adminSecretPrefix,
      RUST_LOG: 'info',
    };
    const retention = props.logRetentionDays ?? 365;

    const rotatorLogs = this.logGroup('RotatorLogGroup', `${namePrefix}-rotator`, retention);
    const rotatorRole = this.named('RotatorRole', new iam.Role(this, 'RotatorRole', {
      description: 'keyrot rotation Lambda',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: { 'keyrot-rotator': new iam.PolicyDocument({ statements: this.rotatorStatements(rotatorLogs) }) },
    }));
    this.rotator = this.named('RotatorFunction', new lambda.Function(this, 'RotatorFunction', {
      functionName: `${namePrefix}-rotator`,
      description: 'keyrot Secrets Manager rotation function',
      code: props.code.rotator,
      handler: 'bootstrap',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      // A step may wait for a Vercel/Render redeploy to be ready.
      timeout: Duration.seconds(300),
      role: rotatorRole,
      logGroup: rotatorLogs,
      environment,
    }));
    this.rotatorInvokePermission = this.named('RotatorInvokePermission', new lambda.CfnPermission(this, 'RotatorInvokePermission', {
      functionName: this.rotator.functionArn,
      action: 'lambda:InvokeFunction',
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    }));

    const keeperLogs = this.logGroup('GraceKeeperLogGroup', `${namePrefix}-grace-keeper`, retention);
    const keeperRole = this.named('GraceKeeperRole', new iam.Role(this, 'GraceKeeperRole', {
      description: 'keyrot grace keeper (revokes old keys after their grace period)',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: { 'keyrot-grace-keeper': new iam.PolicyDocument({ statements: this.keeperStatements(keeperLogs) }) },
    }));
    this.graceKeeper = this.named('GraceKeeperFunction', new lambda.Function(this, 'GraceKeeperFunction', {
      functionName: `${namePrefix}-grace-keeper`,
      description: 'keyrot grace keeper (revocations, overdue and stuck rotations, metrics)',
      code: props.code.graceKeeper,
      handler: 'bootstrap',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      // A run may revoke several keys and check every managed secret.
      timeout: Duration.seconds(900),
      role: keeperRole,
      logGroup: keeperLogs,
      environment: {
        ...environment,
        // Which secrets are keyrot's: under this prefix, and rotated by this rotator or tagged keyrot:*.
        KEYROT_MANAGED_PREFIX: this.managedSecretPrefix,
        KEYROT_ROTATOR_ARN: this.rotator.functionArn,
      },
    }));
    this.scheduleKeeper();
    this.placeInVpc(props, [
      [rotatorRole, this.rotator, 'keyrot-rotator'],
      [keeperRole, this.graceKeeper, 'keyrot-grace-keeper'],
    ]);

    this.cliReadPolicy = this.createCliReadPolicy();
    this.createFailureRule();
    this.createAlarms();
    // The operators' view (template.yaml has the same body).
    this.named('Dashboard', new cloudwatch.CfnDashboard(this, 'Dashboard', {
      dashboardBody: Fn.sub(DASHBOARD_BODY, {
        RotatorFunction: this.rotator.functionName,
        GraceKeeperFunction: this.graceKeeper.functionName,
      }),
    }));
    this.acknowledgeNagFindings(rotatorRole, keeperRole);
  }

  /**
   * Puts a secret under keyrot: Secrets Manager rotates it with the rotator on `schedule`. The secret's name
   * must start with the managed prefix (the rotator may write no other), and its value must be in keyrot's
   * format (docs/secret-format.md). Deploying the stack again never rotates it: the schedule alone does.
   */
  manage(secret: secretsmanager.ISecret, options: ManageOptions): secretsmanager.CfnRotationSchedule {
    const name = secret.secretName;
    if (!Token.isUnresolved(name) && !Token.isUnresolved(this.managedSecretPrefix) && !name.startsWith(this.managedSecretPrefix)) {
      throw new Error(
        `KeyrotRotation.manage: the secret ${name} is not under the managed prefix ${this.managedSecretPrefix}: the rotator may not write it. Rename the secret or set managedSecretPrefix.`,
      );
    }
    const schedule = new secretsmanager.CfnRotationSchedule(secret, 'KeyrotRotation', {
      secretId: secret.secretArn,
      rotationLambdaArn: this.rotator.functionArn,
      rotateImmediatelyOnUpdate: false,
      rotationRules: { scheduleExpression: options.schedule },
    });
    schedule.addResourceDependency(this.rotatorInvokePermission);
    return schedule;
  }

  /** The rotator's invoke permission, for a rotation schedule created by hand (it must exist first). */
  get invokePermission(): CfnResource {
    return this.rotatorInvokePermission;
  }

  // ------------------------------------------------------------ alerts: key, topic, topic policy
  private createAlertKey(namePrefix: string): kms.Key {
    const key = this.named('AlertKey', new kms.Key(this, 'AlertKey', {
      description: 'keyrot alert topic encryption (usable by EventBridge and CloudWatch alarms)',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      policy: new iam.PolicyDocument({
        statements: [
          // The account keeps control of its key through IAM (the default key policy of every KMS key).
          new iam.PolicyStatement({
            sid: 'AccountAdministersKeyThroughIam',
            principals: [new iam.AccountRootPrincipal()],
            actions: ['kms:*'],
            resources: ['*'],
          }),
          // With the AWS-managed aws/sns key, EventBridge rules and alarms fail to publish, silently.
          new iam.PolicyStatement({
            sid: 'EventBridgeAndAlarmsPublishToEncryptedTopic',
            principals: alarmAndRulePrincipals(),
            actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
            resources: ['*'],
            // Only on behalf of this account's rules and alarms (no confused deputy).
            conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
          }),
        ],
      }),
    }));
    this.named('AlertKeyAlias', new kms.Alias(this, 'AlertKeyAlias', { aliasName: `alias/${namePrefix}-alerts`, targetKey: key }));
    return key;
  }

  private createAlertTopic(alertEmail: string | undefined): sns.Topic {
    const topic = this.named('AlertTopic', new sns.Topic(this, 'AlertTopic', { displayName: 'keyrot', masterKey: this.alertKey }));
    const publish = { principals: alarmAndRulePrincipals(), actions: ['sns:Publish'], resources: [topic.topicArn] };
    this.named('AlertTopicPolicy', new sns.TopicPolicy(this, 'AlertTopicPolicy', {
      topics: [topic],
      policyDocument: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'EventBridgeAndAlarmsPublish',
            ...publish,
            conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
          }),
          new iam.PolicyStatement({
            sid: 'PublishOnlyOverTls',
            effect: iam.Effect.DENY,
            ...publish,
            principals: [new iam.AnyPrincipal()],
            conditions: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ],
      }),
    }));
    if (alertEmail !== undefined && alertEmail !== '') {
      const subscription = this.named('AlertEmailSubscription', new sns.CfnSubscription(this, 'AlertEmailSubscription', {
        topicArn: topic.topicArn,
        protocol: 'email',
        endpoint: alertEmail,
      }));
      // An address known only at deploy time (a parameter) may be empty: then there is no subscription.
      if (Token.isUnresolved(alertEmail)) {
        subscription.cfnOptions.condition = this.named('HasAlertEmail', new CfnCondition(this, 'HasAlertEmail', {
          expression: Fn.conditionNot(Fn.conditionEquals(alertEmail, '')),
        }));
      }
    }
    return topic;
  }

  // ------------------------------------------------------------ tables
  private createStateTable(): dynamodb.Table {
    const table = this.named('AuditTable', new dynamodb.Table(this, 'AuditTable', tableProps({ deletionProtection: false })));
    // sparse: pending revocations by due time
    table.addGlobalSecondaryIndex(gsi('gsi2'));
    return table;
  }

  // The audit events, in a table of their own so that IAM can keep them append-only: the functions may put
  // and query, never update or delete, and the table cannot be deleted while protected.
  private createEventsTable(): dynamodb.Table {
    const table = this.named('EventsTable', new dynamodb.Table(this, 'EventsTable', tableProps({ deletionProtection: true })));
    // audit events by month
    table.addGlobalSecondaryIndex(gsi('gsi1'));
    return table;
  }

  private logGroup(id: string, functionName: string, retention: number): logs.LogGroup {
    return this.named(id, new logs.LogGroup(this, id, {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: retention as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    }));
  }

  // ------------------------------------------------------------ IAM
  private managedSecretsArn(): string {
    return `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${this.managedSecretPrefix}*`;
  }

  private adminSecretsArn(): string {
    return `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${this.adminSecretPrefix}*`;
  }

  private rotatorStatements(logGroup: logs.LogGroup): iam.PolicyStatement[] {
    const managed = this.managedSecretsArn();
    return [
      logStatement(logGroup),
      new iam.PolicyStatement({
        sid: 'RotateManagedSecrets',
        actions: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        resources: [managed],
      }),
      new iam.PolicyStatement({
        sid: 'ClearOneShotTags',
        actions: ['secretsmanager:UntagResource'],
        resources: [managed],
        conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': ONE_SHOT_TAGS } },
      }),
      ...this.credentialStatements(),
      // DeleteItem clears a DEPLOY# record when testSecret rolls a target back.
      ...this.sharedStatements(['dynamodb:DeleteItem']),
    ];
  }

  private keeperStatements(logGroup: logs.LogGroup): iam.PolicyStatement[] {
    return [
      logStatement(logGroup),
      // ListSecrets has no resource type: IAM accepts only "*" for it.
      new iam.PolicyStatement({ sid: 'FindSecrets', actions: ['secretsmanager:ListSecrets'], resources: ['*'] }),
      // ListSecretVersionIds dates a stuck AWSPENDING version.
      new iam.PolicyStatement({
        sid: 'ReadManagedSecrets',
        actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:ListSecretVersionIds'],
        resources: [this.managedSecretsArn()],
      }),
      ...this.adminSecretStatements(),
      ...this.sharedStatements([]),
      // A critical alert parked after a failed Publish is forgotten once delivered: deletion of that one
      // partition only, never of a revocation or key record.
      new iam.PolicyStatement({
        sid: 'ForgetParkedAlerts',
        actions: ['dynamodb:DeleteItem'],
        resources: [this.stateTable.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['OUTBOX'] } },
      }),
    ];
  }

  // The rotator's: keyrot's own credentials (an admin secret whose owner tagged it keyrot-admin:rotated=true)
  // are rotated like a managed secret, and no other admin secret is written.
  private credentialStatements(): iam.PolicyStatement[] {
    const admin = this.adminSecretsArn();
    return [
      new iam.PolicyStatement({
        sid: 'RotateOwnCredentials',
        actions: ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'],
        resources: [admin],
        conditions: { StringEquals: ROTATED_TAG },
      }),
      new iam.PolicyStatement({
        sid: 'ClearCredentialOneShotTags',
        actions: ['secretsmanager:UntagResource'],
        resources: [admin],
        conditions: { StringEquals: ROTATED_TAG, 'ForAllValues:StringEquals': { 'aws:TagKeys': ONE_SHOT_TAGS } },
      }),
      // Whatever else a policy attached later allows: no other admin secret is written by keyrot.
      new iam.PolicyStatement({
        sid: 'NeverWriteUnrotatedAdminSecrets',
        effect: iam.Effect.DENY,
        actions: ROTATION_WRITES,
        resources: [admin],
        conditions: { StringNotEquals: ROTATED_TAG },
      }),
      // Nor any tag of an admin secret but the one-shot ones, the owner's keyrot-admin: tags above all.
      new iam.PolicyStatement({
        sid: 'NeverUntagAdminSecrets',
        effect: iam.Effect.DENY,
        actions: ['secretsmanager:UntagResource'],
        resources: [admin],
        conditions: { 'ForAnyValue:StringNotEquals': { 'aws:TagKeys': ONE_SHOT_TAGS } },
      }),
      // Nor any admin secret changed otherwise, its tags and rotation included.
      new iam.PolicyStatement({
        sid: 'NeverWriteAdminSecrets',
        effect: iam.Effect.DENY,
        actions: ADMIN_SECRET_WRITES.filter((action) => !ROTATION_WRITES.includes(action)),
        resources: [admin],
      }),
      this.readAdminKeys(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']),
    ];
  }

  private adminSecretStatements(): iam.PolicyStatement[] {
    const admin = this.adminSecretsArn();
    return [
      // Whatever else a policy attached later allows: the admin secrets are never written by keyrot.
      new iam.PolicyStatement({ sid: 'NeverWriteAdminSecrets', effect: iam.Effect.DENY, actions: ADMIN_SECRET_WRITES, resources: [admin] }),
      // ListSecretVersionIds dates a stuck rotation of one of keyrot's own credentials.
      this.readAdminKeys(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:ListSecretVersionIds']),
    ];
  }

  // DescribeSecret reads the keyrot-admin: tags that say what the secret may serve.
  private readAdminKeys(actions: string[]): iam.PolicyStatement {
    return new iam.PolicyStatement({ sid: 'ReadAdminKeys', actions, resources: [this.adminSecretsArn()] });
  }

  // What both functions share: the tables, the alert topic and its key. TransactWriteItems (a step's audit
  // event with its DONE# guard) is authorized by PutItem on each table.
  private sharedStatements(extraTableActions: string[]): iam.PolicyStatement[] {
    const events = this.eventsTable.tableArn;
    return [
      new iam.PolicyStatement({
        sid: 'State',
        actions: ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:Query', ...extraTableActions],
        resources: [this.stateTable.tableArn, `${this.stateTable.tableArn}/index/*`],
      }),
      // The functions only add events; reading them back is the CLI's (keyrot audit, report).
      new iam.PolicyStatement({ sid: 'AuditEvents', actions: ['dynamodb:PutItem'], resources: [events] }),
      // Whatever else a policy attached later allows: audit events are never changed or removed.
      new iam.PolicyStatement({
        sid: 'AuditEventsAppendOnly',
        effect: iam.Effect.DENY,
        actions: [
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:PartiQLUpdate',
          'dynamodb:PartiQLDelete',
          'dynamodb:DeleteTable',
          'dynamodb:UpdateTable',
        ],
        resources: [events, `${events}/index/*`],
      }),
      new iam.PolicyStatement({ sid: 'Alerts', actions: ['sns:Publish'], resources: [this.alertTopic.topicArn] }),
      new iam.PolicyStatement({
        sid: 'AlertTopicKey',
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: [this.alertKey.keyArn],
      }),
    ];
  }

  // What `keyrot status`, `keyrot audit` and `keyrot report` need, for the people who run them. status and
  // report read the managed secrets' current values (to show each one's provider and targets), so attach
  // this only to those who may read the keys.
  private createCliReadPolicy(): iam.ManagedPolicy {
    const stackArn = `arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/${Aws.STACK_NAME}/*`;
    const policy = this.named('CliReadPolicy', new iam.ManagedPolicy(this, 'CliReadPolicy', {
      description: 'keyrot CLI read commands (status, audit, report)',
      statements: [
        new iam.PolicyStatement({ sid: 'StackOutputs', actions: ['cloudformation:DescribeStacks'], resources: [stackArn] }),
        // ListSecrets has no resource type: IAM accepts only "*" for it.
        new iam.PolicyStatement({ sid: 'ListSecrets', actions: ['secretsmanager:ListSecrets'], resources: ['*'] }),
        new iam.PolicyStatement({
          sid: 'ReadManagedSecrets',
          actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:ListSecretVersionIds'],
          resources: [this.managedSecretsArn()],
        }),
        // ListSecretVersionIds dates a stuck rotation of keyrot's own credentials; their values stay closed.
        new iam.PolicyStatement({
          sid: 'DateCredentialRotations',
          actions: ['secretsmanager:ListSecretVersionIds'],
          resources: [this.adminSecretsArn()],
        }),
        new iam.PolicyStatement({
          sid: 'ReadState',
          actions: ['dynamodb:GetItem', 'dynamodb:Query'],
          resources: [this.stateTable.tableArn, `${this.stateTable.tableArn}/index/*`],
        }),
        new iam.PolicyStatement({
          sid: 'ReadAuditEvents',
          actions: ['dynamodb:Query'],
          resources: [this.eventsTable.tableArn, `${this.eventsTable.tableArn}/index/*`],
        }),
      ],
    }));
    return policy;
  }

  // ------------------------------------------------------------ schedules, rules, alarms
  private scheduleKeeper(): void {
    // Named as SAM names a function's Schedule event, so that the two templates line up.
    const keeper = this.graceKeeper;
    const rule = this.named('GraceKeeperFunctionSchedule', new events.Rule(this, 'GraceKeeperFunctionSchedule', {
      description: 'keyrot grace keeper, every 15 minutes',
      schedule: events.Schedule.rate(Duration.minutes(15)),
      targets: [{ bind: () => ({ id: 'GraceKeeperFunctionScheduleLambdaTarget', arn: keeper.functionArn }) }],
    }));
    this.named('GraceKeeperFunctionSchedulePermission', new lambda.CfnPermission(this, 'GraceKeeperFunctionSchedulePermission', {
      functionName: keeper.functionName,
      action: 'lambda:InvokeFunction',
      principal: 'events.amazonaws.com',
      sourceArn: rule.ruleArn,
    }));
  }

  private createFailureRule(): void {
    const topic = this.alertTopic;
    const rule = this.named('RotationFailedRule', new events.Rule(this, 'RotationFailedRule', {
      description: 'Secrets Manager rotation failures (CloudTrail RotationFailed, RotationAbandoned) to the keyrot topic',
      eventPattern: {
        source: ['aws.secretsmanager'],
        detailType: ['AWS Service Event via CloudTrail'],
        detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: ['RotationFailed', 'RotationAbandoned'] },
      },
      targets: [{ bind: () => ({ id: 'AlertTopic', arn: topic.topicArn }) }],
    }));
    // A sentence a person can act on, instead of the raw CloudTrail event (template.yaml has the same).
    (rule.node.defaultChild as CfnResource).addPropertyOverride('Targets.0.InputTransformer', {
      InputPathsMap: {
        event: '$.detail.eventName',
        secret: '$.detail.additionalEventData.SecretId',
        time: '$.time',
        account: '$.account',
        region: '$.region',
      },
      InputTemplate: FAILURE_MESSAGE,
    });
  }

  private createAlarms(): void {
    const toTopic = new cwActions.SnsAction(this.alertTopic);
    const alarm = (id: string, description: string, metric: cloudwatch.IMetric): void => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(toTopic);
      this.named(id, a);
    };
    alarm(
      'RotatorErrorsAlarm',
      'keyrot rotator invocations failed (a rotation step failed or the function crashed)',
      this.rotator.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
    );
    alarm('GraceKeeperErrorsAlarm', 'keyrot grace keeper runs failed', this.graceKeeper.metricErrors({ statistic: 'Sum', period: Duration.minutes(15) }));
    // DaysSinceRotation is per secret (dimension Secret), and an alarm needs its dimensions up front: the
    // grace keeper compares each secret's age with its own keyrot:max-age-days and counts the overdue ones.
    alarm(
      'KeysOverdueAlarm',
      "keyrot keys overdue: DaysSinceRotation of at least one secret exceeds its keyrot:max-age-days (the grace keeper's Overdue count)",
      new cloudwatch.Metric({ namespace: 'keyrot', metricName: 'Overdue', statistic: 'Maximum', period: Duration.minutes(15) }),
    );
  }

  // ------------------------------------------------------------ optional VPC
  // Written as template.yaml writes it, a condition on the subnets (which may be an empty parameter at deploy
  // time) choosing the functions' VpcConfig and each role's second policy: in a VPC, Lambda manages the
  // functions' network interfaces with the role's own permissions (AWSLambdaVPCAccessExecutionRole's actions).
  private placeInVpc(props: KeyrotRotationProps, functions: [iam.Role, lambda.Function, string][]): void {
    const subnets = props.vpcSubnetIds;
    if (subnets === undefined) {
      return;
    }
    const inVpc = this.named('InVpc', new CfnCondition(this, 'InVpc', {
      expression: Fn.conditionNot(Fn.conditionEquals(Fn.join(',', subnets), '')),
    }));
    for (const [role, fn, name] of functions) {
      const vpcConfig = { SubnetIds: subnets, SecurityGroupIds: props.vpcSecurityGroupIds ?? [] };
      (fn.node.defaultChild as lambda.CfnFunction).addPropertyOverride(
        'VpcConfig',
        Fn.conditionIf(inVpc.logicalId, vpcConfig, Aws.NO_VALUE),
      );
      const policy = {
        PolicyName: `${name}-vpc`,
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [{
            Sid: 'VpcNetworkInterfaces',
            Effect: 'Allow',
            Action: [
              'ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets',
              'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses',
            ],
            Resource: '*',
          }],
        },
      };
      (role.node.defaultChild as iam.CfnRole).addPropertyOverride('Policies.1', Fn.conditionIf(inVpc.logicalId, policy, Aws.NO_VALUE));
      // aws-cdk-lib's validation reads the lists as their empty default, which the condition keeps out.
      const reason = 'VpcConfig is set only under the InVpc condition, when the subnet list is not empty; validation reads the empty default.';
      for (const id of ['CloudFormation-Validate::F3031', 'CloudFormation-Validate::E1150']) {
        Validations.of(fn).acknowledge({ id, reason });
      }
    }
  }

  // ------------------------------------------------------------ cdk-nag: each acknowledgment says why
  // docs/deploy.md lists them. Each finding is acknowledged on the one construct that has it, by the exact id
  // cdk-nag gives it (computed with cdk-nag's own flattening, so it names this construct's resources).
  private acknowledgeNagFindings(rotatorRole: iam.Role, keeperRole: iam.Role): void {
    const ack = (construct: IConstruct, finding: string, reason: string): void =>
      Validations.of(construct).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    const resource = (value: string): string => `Resource::${flattenCfnReference(Stack.of(this).resolve(value))}`;
    const managed = resource(this.managedSecretsArn());
    const stateIndex = resource(`${this.stateTable.tableArn}/index/*`);
    for (const role of [rotatorRole, keeperRole]) {
      ack(
        role,
        managed,
        'keyrot manages every secret under the ManagedSecretPrefix parameter, created after this stack; a secret ARN ends in a random suffix, so a name prefix needs the trailing wildcard.',
      );
      ack(
        role,
        resource(this.adminSecretsArn()),
        'Admin keys and platform tokens are read (DescribeSecret for their keyrot-admin: tags, GetSecretValue; nothing else) from the secrets under the AdminSecretPrefix parameter, named by each managed secret; a secret ARN ends in a random suffix.',
      );
      if (role === keeperRole) {
        ack(role, 'Resource::*', 'Only secretsmanager:ListSecrets, which has no resource type: IAM accepts nothing but "*" for it.');
      }
      ack(role, stateIndex, "Query on the state table's GSI (gsi2: pending revocations), of this stack's table only.");
      ack(
        role,
        'Action::kms:GenerateDataKey*',
        "Publishing to the encrypted alert topic needs kms:GenerateDataKey (SNS asks for GenerateDataKey*-family calls); limited to the alert topic's own key.",
      );
    }
    const cli = this.cliReadPolicy;
    ack(
      cli,
      managed,
      'keyrot status and report read every secret under the ManagedSecretPrefix parameter; a secret ARN ends in a random suffix, so a name prefix needs the trailing wildcard.',
    );
    ack(cli, 'Resource::*', 'Only secretsmanager:ListSecrets, which has no resource type: IAM accepts nothing but "*" for it.');
    ack(
      cli,
      resource(this.adminSecretsArn()),
      "Only ListSecretVersionIds (the date of a stuck rotation of keyrot's own credentials) on the secrets under the AdminSecretPrefix parameter; never their values.",
    );
    ack(cli, stateIndex, "Query on the state table's GSI (gsi2: pending revocations), of this stack's table only.");
    ack(
      cli,
      resource(`${this.eventsTable.tableArn}/index/*`),
      "Query on the events table's GSI (gsi1: audit events by month), of this stack's table only.",
    );
    ack(
      cli,
      resource(`arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/${Aws.STACK_NAME}/*`),
      "DescribeStacks on this stack only; a stack ARN ends in the stack's id.",
    );
  }

  /** With `samLogicalIds`, gives the construct's CloudFormation resource template.yaml's logical id. */
  private named<T extends IConstruct>(logicalId: string, construct: T): T {
    if (this.samLogicalIds) {
      const element = construct instanceof CfnElement ? construct : construct.node.defaultChild;
      if (!(element instanceof CfnElement)) {
        throw new Error(`${construct.node.path} has no CloudFormation resource to give the logical id ${logicalId}`);
      }
      element.overrideLogicalId(logicalId);
    }
    return construct;
  }
}

function checked(prop: string, value: string, pattern: RegExp): string {
  if (!Token.isUnresolved(value) && !pattern.test(value)) {
    throw new Error(`KeyrotRotation: ${prop} "${value}" is not valid (it must match ${pattern.source})`);
  }
  return value;
}

function alarmAndRulePrincipals(): iam.IPrincipal[] {
  return [new iam.ServicePrincipal('events.amazonaws.com'), new iam.ServicePrincipal('cloudwatch.amazonaws.com')];
}

function logStatement(logGroup: logs.LogGroup): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'Logs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] });
}

function tableProps({ deletionProtection }: { deletionProtection: boolean }): dynamodb.TableProps {
  return {
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    ...(deletionProtection ? { deletionProtection } : {}),
    removalPolicy: RemovalPolicy.RETAIN,
  };
}

function gsi(indexName: string): dynamodb.GlobalSecondaryIndexProps {
  return {
    indexName,
    partitionKey: { name: `${indexName}pk`, type: dynamodb.AttributeType.STRING },
    sortKey: { name: `${indexName}sk`, type: dynamodb.AttributeType.STRING },
    projectionType: dynamodb.ProjectionType.ALL,
  };
}
