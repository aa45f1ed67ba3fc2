// The app's stack: template.yaml's parameters around one KeyrotRotation with template.yaml's logical ids,
// its optional example secret and its outputs, so that `make check-infra` can compare the two templates
// resource by resource and action by action.
import { CfnCondition, CfnOutput, CfnParameter, Fn, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { KeyrotCode, KeyrotRotation } from './keyrot-rotation';

export interface KeyrotStackProps extends StackProps {
  readonly code: KeyrotCode;
}

const PREFIX_PATTERN = '^[A-Za-z0-9/_+=.@-]+$';

export class KeyrotStack extends Stack {
  readonly keyrot: KeyrotRotation;

  constructor(scope: Construct, id: string, props: KeyrotStackProps) {
    super(scope, id, props);
    const managedSecretPrefix = new CfnParameter(this, 'ManagedSecretPrefix', {
      type: 'String',
      default: 'keyrot/',
      minLength: 1,
      allowedPattern: PREFIX_PATTERN,
      description:
        'Name prefix of the secrets keyrot rotates. The rotator may read, write and re-label only secrets whose name starts with it.',
    });
    const adminSecretPrefix = new CfnParameter(this, 'AdminSecretPrefix', {
      type: 'String',
      default: 'keyrot-admin/',
      minLength: 1,
      allowedPattern: PREFIX_PATTERN,
      description: 'Name prefix of the secrets that hold provider admin keys and platform tokens (read only).',
    });
    const defaultGraceHours = new CfnParameter(this, 'DefaultGraceHours', {
      type: 'String',
      default: '24',
      allowedPattern: '^[0-9]+(\\.[0-9]+)?$',
      description:
        'Hours an old key stays valid after a rotation when its secret has no keyrot:grace-hours tag (0 revokes at once).',
    });
    const alertEmail = new CfnParameter(this, 'AlertEmail', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^[^@\\s]+@[^@\\s]+$',
      description: 'Optional email address subscribed to the alert topic (confirm the subscription mail). Empty for none.',
    });
    const logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '365',
      allowedValues: ['30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '2192', '2557', '2922', '3288', '3653'],
      description: "Days the functions' CloudWatch logs are kept.",
    });

    const vpcSubnetIds = new CfnParameter(this, 'VpcSubnetIds', {
      type: 'CommaDelimitedList',
      default: '',
      description:
        'Optional: private subnets both functions run in, to reach a database in a VPC. They must reach the providers and AWS through a NAT gateway or VPC endpoints (docs/deploy.md). Empty runs them outside any VPC.',
    });
    const vpcSecurityGroupIds = new CfnParameter(this, 'VpcSecurityGroupIds', {
      type: 'CommaDelimitedList',
      default: '',
      description: "Security groups of the functions when VpcSubnetIds is set: outbound 443 (providers, AWS) and the database's port.",
    });

    this.keyrot = new KeyrotRotation(this, 'Keyrot', {
      code: props.code,
      managedSecretPrefix: managedSecretPrefix.valueAsString,
      adminSecretPrefix: adminSecretPrefix.valueAsString,
      defaultGraceHours: defaultGraceHours.valueAsString,
      alertEmail: alertEmail.valueAsString,
      logRetentionDays: logRetentionDays.valueAsNumber,
      vpcSubnetIds: vpcSubnetIds.valueAsList,
      vpcSecurityGroupIds: vpcSecurityGroupIds.valueAsList,
      samLogicalIds: true,
    });
    this.exampleSecret(managedSecretPrefix);
    this.outputs();
    // CloudFormation Validate (aws-cdk-lib's own plugin, a warning) guesses from the word "Secret" in the
    // names of ManagedSecretPrefix, AdminSecretPrefix, ExampleSecretName and ExampleSecretRotationSchedule.
    Validations.of(this).acknowledge({
      id: 'CloudFormation-Validate::W2509',
      reason:
        'These parameters hold secret name prefixes, a secret name and a schedule, not secret values: NoEcho would only hide them from the operator.',
    });
  }

  // The optional example secret, created only when ExampleSecretName is given.
  private exampleSecret(managedSecretPrefix: CfnParameter): void {
    const name = new CfnParameter(this, 'ExampleSecretName', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^[A-Za-z0-9/_+=.@-]+$',
      description:
        'Optional: creates one example generic secret named ManagedSecretPrefix + this, with a rotation schedule. Empty creates none.',
    });
    const schedule = new CfnParameter(this, 'ExampleSecretRotationSchedule', {
      type: 'String',
      default: 'rate(30 days)',
      description: 'Rotation schedule of the example secret (rate(N days) or cron(...)).',
    });
    const create = new CfnCondition(this, 'CreateExampleSecret', {
      expression: Fn.conditionNot(Fn.conditionEquals(name.valueAsString, '')),
    });
    const secret = new secretsmanager.CfnSecret(this, 'ExampleSecret', {
      name: `${managedSecretPrefix.valueAsString}${name.valueAsString}`,
      description: 'keyrot example managed secret (provider generic)',
      generateSecretString: {
        secretStringTemplate: '{"provider":"generic","generic":{"length":48,"prefix":"sk_example_"}}',
        generateStringKey: 'api_key',
        passwordLength: 48,
        excludePunctuation: true,
      },
    });
    secret.cfnOptions.condition = create;
    const rotation = new secretsmanager.CfnRotationSchedule(this, 'ExampleSecretRotation', {
      secretId: secret.ref,
      rotationLambdaArn: this.keyrot.rotator.functionArn,
      // A redeploy of the stack must not rotate keys: the schedule alone does.
      rotateImmediatelyOnUpdate: false,
      rotationRules: { scheduleExpression: schedule.valueAsString },
    });
    rotation.cfnOptions.condition = create;
    rotation.addResourceDependency(this.keyrot.invokePermission);
  }

  private outputs(): void {
    const k = this.keyrot;
    const output = (id: string, description: string, value: string): CfnOutput => new CfnOutput(this, id, { description, value });
    output('RotatorArn', 'The rotation Lambda; give it to `aws secretsmanager rotate-secret --rotation-lambda-arn`', k.rotator.functionArn);
    output('TableName', 'The state table (KEYROT_AUDIT_TABLE for the keyrot CLI)', k.stateTable.tableName);
    output(
      'EventsTableName',
      'The audit events table, append-only (KEYROT_EVENTS_TABLE for the keyrot CLI and keyrot audit)',
      k.eventsTable.tableName,
    );
    output('TopicArn', 'The alert topic; subscribe to it (email, SQS, chat)', k.alertTopic.topicArn);
    output(
      'ManagedPrefix',
      'The name prefix of the secrets keyrot manages (KEYROT_MANAGED_PREFIX for the keyrot CLI)',
      k.managedSecretPrefix,
    );
    output('AdminPrefix', 'The name prefix of the admin and token secrets (KEYROT_ADMIN_PREFIX for the keyrot CLI)', k.adminSecretPrefix);
    output(
      'DefaultGraceInHours',
      'The grace of old keys when a secret has no keyrot:grace-hours tag (KEYROT_DEFAULT_GRACE_HOURS for the keyrot CLI)',
      k.defaultGraceHours,
    );
    output(
      'CliReadPolicyArn',
      "The managed policy for the CLI's read commands (status, audit, report); it reads the managed secrets' values",
      k.cliReadPolicy.managedPolicyArn,
    );
    output(
      'AlertKeyArn',
      "The alert topic's KMS key (an encrypted SQS subscriber needs nothing from it; a new publisher needs kms:GenerateDataKey*)",
      k.alertKey.keyArn,
    );
  }
}
