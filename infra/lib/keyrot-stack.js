// @ts-check
'use strict';
// keyrot's resources, the same ones template.yaml declares for SAM, with the same logical ids, so that
// `make check-infra` can compare the two templates resource by resource and action by action.
const path = require('path');
const fs = require('fs');
const cdk = require('aws-cdk-lib');
const { Aws, Duration, RemovalPolicy, Fn } = cdk;
const cloudwatch = require('aws-cdk-lib/aws-cloudwatch');
const cwActions = require('aws-cdk-lib/aws-cloudwatch-actions');
const dynamodb = require('aws-cdk-lib/aws-dynamodb');
const events = require('aws-cdk-lib/aws-events');
const iam = require('aws-cdk-lib/aws-iam');
const kms = require('aws-cdk-lib/aws-kms');
const lambda = require('aws-cdk-lib/aws-lambda');
const logs = require('aws-cdk-lib/aws-logs');
const secretsmanager = require('aws-cdk-lib/aws-secretsmanager');
const sns = require('aws-cdk-lib/aws-sns');

/** The rotation-failure rule's message to the topic: EventBridge input-transformer placeholders. */
const FAILURE_MESSAGE = "\"keyrot: Secrets Manager reports <event> for <secret> at <time> (account <account>, region <region>): the rotation did not finish. See which step failed and why with `keyrot audit --secret <secret>` and `keyrot status --secret <secret>`; a stuck rotation is cleared with `keyrot repair <secret>` (docs/steps.md, Repair).\"";

/**
 * The CloudWatch dashboard, an Fn::Sub string: each managed secret's age, the rotation steps and their failures,
 * what the grace keeper revoked, postponed or found overdue, stuck or orphaned, and how long its passes take.
 */
const DASHBOARD_BODY = "{\"widgets\":[{\"type\":\"metric\",\"x\":0,\"y\":0,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Days since rotation, per managed secret\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Maximum\",\"period\":3600,\"metrics\":[[{\"expression\":\"SEARCH('{keyrot,Secret} MetricName=\\\"DaysSinceRotation\\\"', 'Maximum', 3600)\",\"id\":\"days\",\"label\":\"\"}]]}},{\"type\":\"metric\",\"x\":12,\"y\":0,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Rotation steps and failed steps\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Sum\",\"period\":3600,\"metrics\":[[\"AWS/Lambda\",\"Invocations\",\"FunctionName\",\"${RotatorFunction}\",{\"label\":\"steps\"}],[\"AWS/Lambda\",\"Errors\",\"FunctionName\",\"${RotatorFunction}\",{\"label\":\"failed steps\"}]]}},{\"type\":\"metric\",\"x\":0,\"y\":6,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Revocations, postponements, overdue, stuck, orphans\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Sum\",\"period\":3600,\"metrics\":[[\"keyrot\",\"Revoked\"],[\"keyrot\",\"RevocationFailed\"],[\"keyrot\",\"Postponed\"],[\"keyrot\",\"Overdue\",{\"stat\":\"Maximum\"}],[\"keyrot\",\"Stuck\",{\"stat\":\"Maximum\"}],[\"keyrot\",\"Orphans\",{\"stat\":\"Maximum\"}]]}},{\"type\":\"metric\",\"x\":12,\"y\":6,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Grace keeper pass duration (ms)\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Maximum\",\"period\":900,\"metrics\":[[\"AWS/Lambda\",\"Duration\",\"FunctionName\",\"${GraceKeeperFunction}\"]]}}]}";

/**
 * Gives an L2 construct's CloudFormation resource the logical id template.yaml uses.
 * @template {import('constructs').IConstruct} T
 * @param {T} construct
 * @param {string} id
 * @returns {T}
 */
function logicalId(construct, id) {
  const resource = construct.node.defaultChild;
  if (!(resource instanceof cdk.CfnElement)) {
    throw new Error(`${construct.node.path} has no CloudFormation resource to give the logical id ${id}`);
  }
  resource.overrideLogicalId(id);
  return construct;
}

/**
 * A `bootstrap.zip` built by `make build` (cargo lambda build --arm64 --output-format zip).
 * @param {string} lambdaDir
 * @param {string} bin
 * @returns {lambda.Code}
 */
function bootstrapZip(lambdaDir, bin) {
  const zip = path.join(lambdaDir, bin, 'bootstrap.zip');
  if (!fs.existsSync(zip)) {
    throw new Error(`${zip} does not exist: run \`make build\` first (or set KEYROT_LAMBDA_DIR)`);
  }
  return lambda.Code.fromAsset(zip);
}

class KeyrotStack extends cdk.Stack {
  /**
   * @param {import('constructs').Construct} scope
   * @param {string} id
   * @param {cdk.StackProps & { lambdaDir: string }} props
   */
  constructor(scope, id, props) {
    super(scope, id, props);
    const { lambdaDir } = props;

    // ------------------------------------------------------------ parameters (as in template.yaml)
    const managedSecretPrefix = new cdk.CfnParameter(this, 'ManagedSecretPrefix', {
      type: 'String',
      default: 'keyrot/',
      minLength: 1,
      allowedPattern: '^[A-Za-z0-9/_+=.@-]+$',
      description:
        'Name prefix of the secrets keyrot rotates. The rotator may read, write and re-label only secrets whose name starts with it.',
    });
    const adminSecretPrefix = new cdk.CfnParameter(this, 'AdminSecretPrefix', {
      type: 'String',
      default: 'keyrot-admin/',
      minLength: 1,
      allowedPattern: '^[A-Za-z0-9/_+=.@-]+$',
      description: 'Name prefix of the secrets that hold provider admin keys and platform tokens (read only).',
    });
    const defaultGraceHours = new cdk.CfnParameter(this, 'DefaultGraceHours', {
      type: 'String',
      default: '24',
      allowedPattern: '^[0-9]+(\\.[0-9]+)?$',
      description:
        'Hours an old key stays valid after a rotation when its secret has no keyrot:grace-hours tag (0 revokes at once).',
    });
    const alertEmail = new cdk.CfnParameter(this, 'AlertEmail', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^[^@\\s]+@[^@\\s]+$',
      description: 'Optional email address subscribed to the alert topic (confirm the subscription mail). Empty for none.',
    });
    const logRetentionDays = new cdk.CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '365',
      allowedValues: ['30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '2192', '2557', '2922', '3288', '3653'],
      description: "Days the functions' CloudWatch logs are kept.",
    });
    const exampleSecretName = new cdk.CfnParameter(this, 'ExampleSecretName', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^[A-Za-z0-9/_+=.@-]+$',
      description:
        'Optional: creates one example generic secret named ManagedSecretPrefix + this, with a rotation schedule. Empty creates none.',
    });
    const exampleSecretRotationSchedule = new cdk.CfnParameter(this, 'ExampleSecretRotationSchedule', {
      type: 'String',
      default: 'rate(30 days)',
      description: 'Rotation schedule of the example secret (rate(N days) or cron(...)).',
    });

    const hasAlertEmail = new cdk.CfnCondition(this, 'HasAlertEmail', {
      expression: Fn.conditionNot(Fn.conditionEquals(alertEmail.valueAsString, '')),
    });
    const createExampleSecret = new cdk.CfnCondition(this, 'CreateExampleSecret', {
      expression: Fn.conditionNot(Fn.conditionEquals(exampleSecretName.valueAsString, '')),
    });

    const managedSecrets = Fn.sub(
      'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${ManagedSecretPrefix}*',
    );
    /** Every Secrets Manager action that changes a secret: denied to both functions on the admin secrets. */
    const adminSecretWrites = [
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
    const adminSecrets = Fn.sub(
      'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AdminSecretPrefix}*',
    );

    // ------------------------------------------------------------ alerts: key, topic, topic policy
    const alarmAndRulePrincipals = [
      new iam.ServicePrincipal('events.amazonaws.com'),
      new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
    ];
    const alertKey = logicalId(
      new kms.Key(this, 'AlertKey', {
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
              principals: alarmAndRulePrincipals,
              actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
              resources: ['*'],
              // Only on behalf of this account's rules and alarms (no confused deputy).
              conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
            }),
          ],
        }),
      }),
      'AlertKey',
    );
    logicalId(
      new kms.Alias(this, 'AlertKeyAlias', { aliasName: `alias/${Aws.STACK_NAME}-alerts`, targetKey: alertKey }),
      'AlertKeyAlias',
    );

    const alertTopic = logicalId(new sns.Topic(this, 'AlertTopic', { displayName: 'keyrot', masterKey: alertKey }), 'AlertTopic');
    logicalId(
      new sns.TopicPolicy(this, 'AlertTopicPolicy', {
        topics: [alertTopic],
        policyDocument: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'EventBridgeAndAlarmsPublish',
              principals: alarmAndRulePrincipals,
              actions: ['sns:Publish'],
              resources: [alertTopic.topicArn],
              conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
            }),
            new iam.PolicyStatement({
              sid: 'PublishOnlyOverTls',
              effect: iam.Effect.DENY,
              principals: [new iam.AnyPrincipal()],
              actions: ['sns:Publish'],
              resources: [alertTopic.topicArn],
              conditions: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ],
        }),
      }),
      'AlertTopicPolicy',
    );

    const subscription = new sns.CfnSubscription(this, 'AlertEmailSubscription', {
      topicArn: alertTopic.topicArn,
      protocol: 'email',
      endpoint: alertEmail.valueAsString,
    });
    subscription.cfnOptions.condition = hasAlertEmail;

    // ------------------------------------------------------------ tables
    // The state table: step guards, revocations, key records, deployments, alert dedupe (docs/tables.md).
    const auditTable = logicalId(
      new dynamodb.Table(this, 'AuditTable', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      'AuditTable',
    );
    // sparse: pending revocations by due time
    auditTable.addGlobalSecondaryIndex({
      indexName: 'gsi2',
      partitionKey: { name: 'gsi2pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'gsi2sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    // The audit events, in a table of their own so that IAM can keep them append-only: the functions may
    // put and query, never update or delete, and the table cannot be deleted while protected.
    const eventsTable = logicalId(
      new dynamodb.Table(this, 'EventsTable', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      'EventsTable',
    );
    // audit events by month
    eventsTable.addGlobalSecondaryIndex({
      indexName: 'gsi1',
      partitionKey: { name: 'gsi1pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'gsi1sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // What both functions share: the tables, the alert topic and its key, and their environment.
    // TransactWriteItems (a step's audit event with its DONE# guard) is authorized by PutItem on each table.
    const eventsResources = [eventsTable.tableArn, `${eventsTable.tableArn}/index/*`];
    /** @type {(extraTableActions?: string[]) => iam.PolicyStatement[]} */
    const sharedStatements = (extraTableActions = []) => [
      new iam.PolicyStatement({
        sid: 'State',
        actions: ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:Query', ...extraTableActions],
        resources: [auditTable.tableArn, `${auditTable.tableArn}/index/*`],
      }),
      // The functions only add events; reading them back is the CLI's (keyrot audit, report).
      new iam.PolicyStatement({ sid: 'AuditEvents', actions: ['dynamodb:PutItem'], resources: [eventsTable.tableArn] }),
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
        resources: eventsResources,
      }),
      new iam.PolicyStatement({ sid: 'Alerts', actions: ['sns:Publish'], resources: [alertTopic.topicArn] }),
      new iam.PolicyStatement({
        sid: 'AlertTopicKey',
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: [alertKey.keyArn],
      }),
    ];
    const environment = {
      KEYROT_AUDIT_TABLE: auditTable.tableName,
      KEYROT_EVENTS_TABLE: eventsTable.tableName,
      KEYROT_ALERT_TOPIC_ARN: alertTopic.topicArn,
      KEYROT_DEFAULT_GRACE_HOURS: defaultGraceHours.valueAsString,
      // Where admin keys and tokens live: a value naming one elsewhere is refused (docs/security.md).
      KEYROT_ADMIN_PREFIX: adminSecretPrefix.valueAsString,
      RUST_LOG: 'info',
    };
    /** @type {(id: string, suffix: string) => logs.LogGroup} */
    const logGroup = (id, suffix) =>
      logicalId(
        new logs.LogGroup(this, id, {
          logGroupName: `/aws/lambda/${Aws.STACK_NAME}-${suffix}`,
          retention: logRetentionDays.valueAsNumber,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        id,
      );
    const lambdaPrincipal = new iam.ServicePrincipal('lambda.amazonaws.com');

    // ------------------------------------------------------------ rotator
    const rotatorLogGroup = logGroup('RotatorLogGroup', 'rotator');
    const rotatorRole = logicalId(
      new iam.Role(this, 'RotatorRole', {
        description: 'keyrot rotation Lambda',
        assumedBy: lambdaPrincipal,
        inlinePolicies: {
          'keyrot-rotator': new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'Logs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [rotatorLogGroup.logGroupArn],
              }),
              new iam.PolicyStatement({
                sid: 'RotateManagedSecrets',
                actions: [
                  'secretsmanager:DescribeSecret',
                  'secretsmanager:GetSecretValue',
                  'secretsmanager:PutSecretValue',
                  'secretsmanager:UpdateSecretVersionStage',
                ],
                resources: [managedSecrets],
              }),
              new iam.PolicyStatement({
                sid: 'ClearOneShotTags',
                actions: ['secretsmanager:UntagResource'],
                resources: [managedSecrets],
                conditions: {
                  'ForAllValues:StringEquals': { 'aws:TagKeys': ['keyrot:next-grace-hours', 'keyrot:trigger', 'keyrot:one-shot-for'] },
                },
              }),
              // Whatever else a policy attached later allows: the admin secrets are never written by keyrot.
              new iam.PolicyStatement({
                sid: 'NeverWriteAdminSecrets',
                effect: iam.Effect.DENY,
                actions: adminSecretWrites,
                resources: [adminSecrets],
              }),
              new iam.PolicyStatement({
                sid: 'ReadAdminKeys',
                // DescribeSecret reads the keyrot-admin: tags that say what the secret may serve.
                actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
                resources: [adminSecrets],
              }),
              // GetRandomPassword has no resource type: IAM accepts only "*" for it.
              new iam.PolicyStatement({ sid: 'RandomKeys', actions: ['secretsmanager:GetRandomPassword'], resources: ['*'] }),
              // DeleteItem clears a DEPLOY# record when testSecret rolls a target back.
              ...sharedStatements(['dynamodb:DeleteItem']),
            ],
          }),
        },
      }),
      'RotatorRole',
    );
    const rotator = logicalId(
      new lambda.Function(this, 'RotatorFunction', {
        functionName: `${Aws.STACK_NAME}-rotator`,
        description: 'keyrot Secrets Manager rotation function',
        code: bootstrapZip(lambdaDir, 'keyrot-rotator'),
        handler: 'bootstrap',
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 256,
        // A step may wait for a Vercel/Render redeploy to be ready.
        timeout: Duration.seconds(300),
        role: rotatorRole,
        logGroup: rotatorLogGroup,
        environment,
      }),
      'RotatorFunction',
    );
    const rotatorInvokePermission = new lambda.CfnPermission(this, 'RotatorInvokePermission', {
      functionName: rotator.functionArn,
      action: 'lambda:InvokeFunction',
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });

    // ------------------------------------------------------------ grace keeper
    const keeperLogGroup = logGroup('GraceKeeperLogGroup', 'grace-keeper');
    const keeperRole = logicalId(
      new iam.Role(this, 'GraceKeeperRole', {
        description: 'keyrot grace keeper (revokes old keys after their grace period)',
        assumedBy: lambdaPrincipal,
        inlinePolicies: {
          'keyrot-grace-keeper': new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'Logs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [keeperLogGroup.logGroupArn],
              }),
              // ListSecrets has no resource type: IAM accepts only "*" for it.
              new iam.PolicyStatement({ sid: 'FindSecrets', actions: ['secretsmanager:ListSecrets'], resources: ['*'] }),
              // ListSecretVersionIds dates a stuck AWSPENDING version.
              new iam.PolicyStatement({
                sid: 'ReadManagedSecrets',
                actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:ListSecretVersionIds'],
                resources: [managedSecrets],
              }),
              // Whatever else a policy attached later allows: the admin secrets are never written by keyrot.
              new iam.PolicyStatement({
                sid: 'NeverWriteAdminSecrets',
                effect: iam.Effect.DENY,
                actions: adminSecretWrites,
                resources: [adminSecrets],
              }),
              new iam.PolicyStatement({
                sid: 'ReadAdminKeys',
                // DescribeSecret reads the keyrot-admin: tags that say what the secret may serve.
                actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
                resources: [adminSecrets],
              }),
              ...sharedStatements(),
              // A critical alert parked after a failed Publish is forgotten once delivered: deletion of
              // that one partition only, never of a revocation or key record.
              new iam.PolicyStatement({
                sid: 'ForgetParkedAlerts',
                actions: ['dynamodb:DeleteItem'],
                resources: [auditTable.tableArn],
                conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['OUTBOX'] } },
              }),
            ],
          }),
        },
      }),
      'GraceKeeperRole',
    );
    const keeper = logicalId(
      new lambda.Function(this, 'GraceKeeperFunction', {
        functionName: `${Aws.STACK_NAME}-grace-keeper`,
        description: 'keyrot grace keeper (revocations, overdue and stuck rotations, metrics)',
        code: bootstrapZip(lambdaDir, 'keyrot-grace-keeper'),
        handler: 'bootstrap',
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 256,
        // A run may revoke several keys and check every managed secret.
        timeout: Duration.seconds(900),
        role: keeperRole,
        logGroup: keeperLogGroup,
        environment: {
          ...environment,
          // Which secrets are keyrot's: under this prefix, and rotated by this rotator or tagged keyrot:*.
          KEYROT_MANAGED_PREFIX: managedSecretPrefix.valueAsString,
          KEYROT_ROTATOR_ARN: rotator.functionArn,
        },
      }),
      'GraceKeeperFunction',
    );
    // Named as SAM names a function's Schedule event, so that the two templates line up.
    const schedule = logicalId(
      new events.Rule(this, 'GraceKeeperFunctionSchedule', {
        description: 'keyrot grace keeper, every 15 minutes',
        schedule: events.Schedule.rate(Duration.minutes(15)),
        targets: [{ bind: () => ({ id: 'GraceKeeperFunctionScheduleLambdaTarget', arn: keeper.functionArn }) }],
      }),
      'GraceKeeperFunctionSchedule',
    );
    new lambda.CfnPermission(this, 'GraceKeeperFunctionSchedulePermission', {
      functionName: keeper.functionName,
      action: 'lambda:InvokeFunction',
      principal: 'events.amazonaws.com',
      sourceArn: schedule.ruleArn,
    });

    // ------------------------------------------------------------ the CLI's read commands
    // What `keyrot status`, `keyrot audit` and `keyrot report` need, for the people who run them. status and
    // report read the managed secrets' current values (to show each one's provider and targets), so attach
    // this only to those who may read the keys.
    const cliReadPolicy = logicalId(
      new iam.ManagedPolicy(this, 'CliReadPolicy', {
        description: 'keyrot CLI read commands (status, audit, report)',
        statements: [
          new iam.PolicyStatement({
            sid: 'StackOutputs',
            actions: ['cloudformation:DescribeStacks'],
            resources: [Fn.sub('arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*')],
          }),
          // ListSecrets has no resource type: IAM accepts only "*" for it.
          new iam.PolicyStatement({ sid: 'ListSecrets', actions: ['secretsmanager:ListSecrets'], resources: ['*'] }),
          new iam.PolicyStatement({
            sid: 'ReadManagedSecrets',
            actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:ListSecretVersionIds'],
            resources: [managedSecrets],
          }),
          new iam.PolicyStatement({
            sid: 'ReadState',
            actions: ['dynamodb:GetItem', 'dynamodb:Query'],
            resources: [auditTable.tableArn, `${auditTable.tableArn}/index/*`],
          }),
          new iam.PolicyStatement({
            sid: 'ReadAuditEvents',
            actions: ['dynamodb:Query'],
            resources: [eventsTable.tableArn, `${eventsTable.tableArn}/index/*`],
          }),
        ],
      }),
      'CliReadPolicy',
    );

    // ------------------------------------------------------------ failures reach the topic
    const rotationFailed = logicalId(
      new events.Rule(this, 'RotationFailedRule', {
        description:
          'Secrets Manager rotation failures (CloudTrail RotationFailed, RotationAbandoned) to the keyrot topic',
        eventPattern: {
          source: ['aws.secretsmanager'],
          detailType: ['AWS Service Event via CloudTrail'],
          detail: {
            eventSource: ['secretsmanager.amazonaws.com'],
            eventName: ['RotationFailed', 'RotationAbandoned'],
          },
        },
        targets: [{ bind: () => ({ id: 'AlertTopic', arn: alertTopic.topicArn }) }],
      }),
      'RotationFailedRule',
    );
    // A sentence a person can act on, instead of the raw CloudTrail event (template.yaml has the same).
    /** @type {cdk.CfnResource} */ (rotationFailed.node.defaultChild).addPropertyOverride(
      'Targets.0.InputTransformer',
      {
        InputPathsMap: {
          event: '$.detail.eventName',
          secret: '$.detail.additionalEventData.SecretId',
          time: '$.time',
          account: '$.account',
          region: '$.region',
        },
        InputTemplate: FAILURE_MESSAGE,
      },
    );

    const toTopic = new cwActions.SnsAction(alertTopic);
    /** @type {(id: string, description: string, metric: cloudwatch.IMetric) => cloudwatch.Alarm} */
    const alarm = (id, description, metric) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(toTopic);
      return logicalId(a, id);
    };
    alarm(
      'RotatorErrorsAlarm',
      'keyrot rotator invocations failed (a rotation step failed or the function crashed)',
      rotator.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
    );
    alarm(
      'GraceKeeperErrorsAlarm',
      'keyrot grace keeper runs failed',
      keeper.metricErrors({ statistic: 'Sum', period: Duration.minutes(15) }),
    );
    // DaysSinceRotation is per secret (dimension Secret), and an alarm needs its dimensions up front: the
    // grace keeper compares each secret's age with its own keyrot:max-age-days and counts the overdue ones.
    alarm(
      'KeysOverdueAlarm',
      "keyrot keys overdue: DaysSinceRotation of at least one secret exceeds its keyrot:max-age-days (the grace keeper's Overdue count)",
      new cloudwatch.Metric({ namespace: 'keyrot', metricName: 'Overdue', statistic: 'Maximum', period: Duration.minutes(15) }),
    );

    // The operators' view (template.yaml has the same body).
    new cloudwatch.CfnDashboard(this, 'Dashboard', { dashboardBody: Fn.sub(DASHBOARD_BODY) }).overrideLogicalId(
      'Dashboard',
    );

    // ------------------------------------------------------------ optional example secret
    const exampleSecret = new secretsmanager.CfnSecret(this, 'ExampleSecret', {
      name: `${managedSecretPrefix.valueAsString}${exampleSecretName.valueAsString}`,
      description: 'keyrot example managed secret (provider generic)',
      generateSecretString: {
        secretStringTemplate: '{"provider":"generic","generic":{"length":48,"prefix":"sk_example_"}}',
        generateStringKey: 'api_key',
        passwordLength: 48,
        excludePunctuation: true,
      },
    });
    exampleSecret.cfnOptions.condition = createExampleSecret;
    const exampleRotation = new secretsmanager.CfnRotationSchedule(this, 'ExampleSecretRotation', {
      secretId: exampleSecret.ref,
      rotationLambdaArn: rotator.functionArn,
      // A redeploy of the stack must not rotate keys: the schedule alone does.
      rotateImmediatelyOnUpdate: false,
      rotationRules: { scheduleExpression: exampleSecretRotationSchedule.valueAsString },
    });
    exampleRotation.cfnOptions.condition = createExampleSecret;
    exampleRotation.addResourceDependency(rotatorInvokePermission);

    // ------------------------------------------------------------ outputs
    new cdk.CfnOutput(this, 'RotatorArn', {
      description: 'The rotation Lambda; give it to `aws secretsmanager rotate-secret --rotation-lambda-arn`',
      value: rotator.functionArn,
    });
    new cdk.CfnOutput(this, 'TableName', {
      description: 'The state table (KEYROT_AUDIT_TABLE for the keyrot CLI)',
      value: auditTable.tableName,
    });
    new cdk.CfnOutput(this, 'EventsTableName', {
      description: 'The audit events table, append-only (KEYROT_EVENTS_TABLE for the keyrot CLI and keyrot audit)',
      value: eventsTable.tableName,
    });
    new cdk.CfnOutput(this, 'TopicArn', {
      description: 'The alert topic; subscribe to it (email, SQS, chat)',
      value: alertTopic.topicArn,
    });
    new cdk.CfnOutput(this, 'ManagedPrefix', {
      description: 'The name prefix of the secrets keyrot manages (KEYROT_MANAGED_PREFIX for the keyrot CLI)',
      value: managedSecretPrefix.valueAsString,
    });
    new cdk.CfnOutput(this, 'AdminPrefix', {
      description: 'The name prefix of the admin and token secrets (KEYROT_ADMIN_PREFIX for the keyrot CLI)',
      value: adminSecretPrefix.valueAsString,
    });
    new cdk.CfnOutput(this, 'DefaultGraceInHours', {
      description:
        'The grace of old keys when a secret has no keyrot:grace-hours tag (KEYROT_DEFAULT_GRACE_HOURS for the keyrot CLI)',
      value: defaultGraceHours.valueAsString,
    });
    new cdk.CfnOutput(this, 'CliReadPolicyArn', {
      description:
        "The managed policy for the CLI's read commands (status, audit, report); it reads the managed secrets' values",
      value: cliReadPolicy.managedPolicyArn,
    });
    new cdk.CfnOutput(this, 'AlertKeyArn', {
      description:
        "The alert topic's KMS key (an encrypted SQS subscriber needs nothing from it; a new publisher needs kms:GenerateDataKey*)",
      value: alertKey.keyArn,
    });

    this.suppressNagFindings({ rotatorRole, keeperRole, cliReadPolicy });
  }

  // ------------------------------------------------------------ cdk-nag: each acknowledgment says why
  // docs/deploy.md lists them. Every finding is acknowledged on the one construct that has it, by its exact id.
  /** @param {{ rotatorRole: iam.Role, keeperRole: iam.Role, cliReadPolicy: iam.ManagedPolicy }} constructs */
  suppressNagFindings({ rotatorRole, keeperRole, cliReadPolicy }) {
    /** @type {(construct: import('constructs').IConstruct, id: string, reason: string) => void} */
    const ack = (construct, id, reason) => cdk.Validations.of(construct).acknowledge({ id, reason });
    /** @type {(prefix: string) => string} */
    const secretArn = (prefix) =>
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:<${prefix}>*]`;
    for (const role of [rotatorRole, keeperRole]) {
      ack(
        role,
        secretArn('ManagedSecretPrefix'),
        'keyrot manages every secret under the ManagedSecretPrefix parameter, created after this stack; a secret ARN ends in a random suffix, so a name prefix needs the trailing wildcard.',
      );
      ack(
        role,
        secretArn('AdminSecretPrefix'),
        'Admin keys and platform tokens are read (DescribeSecret for their keyrot-admin: tags, GetSecretValue; nothing else) from the secrets under the AdminSecretPrefix parameter, named by each managed secret; a secret ARN ends in a random suffix.',
      );
      ack(
        role,
        'AwsSolutions-IAM5[Resource::*]',
        role === rotatorRole
          ? 'Only secretsmanager:GetRandomPassword, which has no resource type: IAM accepts nothing but "*" for it.'
          : 'Only secretsmanager:ListSecrets, which has no resource type: IAM accepts nothing but "*" for it.',
      );
      ack(
        role,
        'AwsSolutions-IAM5[Resource::<AuditTable.Arn>/index/*]',
        "Query on the state table's GSI (gsi2: pending revocations), of this stack's table only.",
      );
      ack(
        role,
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        "Publishing to the encrypted alert topic needs kms:GenerateDataKey (SNS asks for GenerateDataKey*-family calls); limited to the alert topic's own key.",
      );
    }
    ack(
      cliReadPolicy,
      secretArn('ManagedSecretPrefix'),
      'keyrot status and report read every secret under the ManagedSecretPrefix parameter; a secret ARN ends in a random suffix, so a name prefix needs the trailing wildcard.',
    );
    ack(
      cliReadPolicy,
      'AwsSolutions-IAM5[Resource::*]',
      'Only secretsmanager:ListSecrets, which has no resource type: IAM accepts nothing but "*" for it.',
    );
    ack(
      cliReadPolicy,
      'AwsSolutions-IAM5[Resource::<AuditTable.Arn>/index/*]',
      "Query on the state table's GSI (gsi2: pending revocations), of this stack's table only.",
    );
    ack(
      cliReadPolicy,
      'AwsSolutions-IAM5[Resource::<EventsTable.Arn>/index/*]',
      "Query on the events table's GSI (gsi1: audit events by month), of this stack's table only.",
    );
    ack(
      cliReadPolicy,
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/<AWS::StackName>/*]',
      "DescribeStacks on this stack only; a stack ARN ends in the stack's id.",
    );
    // CloudFormation Validate (aws-cdk-lib's own plugin, a warning) guesses from the word "Secret" in the
    // names of ManagedSecretPrefix, AdminSecretPrefix, ExampleSecretName and ExampleSecretRotationSchedule.
    ack(
      this,
      'CloudFormation-Validate::W2509',
      'These parameters hold secret name prefixes, a secret name and a schedule, not secret values: NoEcho would only hide them from the operator.',
    );
  }
}

module.exports = { KeyrotStack };
