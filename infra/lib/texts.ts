// The two texts template.yaml and this app share, byte for byte (`make check-infra` compares the templates).

/** The rotation-failure rule's message to the topic: EventBridge input-transformer placeholders. */
export const FAILURE_MESSAGE =
  "\"keyrot: Secrets Manager reports <event> for <secret> at <time> (account <account>, region <region>): the rotation did not finish. See which step failed and why with `keyrot audit --secret <secret>` and `keyrot status --secret <secret>`; a stuck rotation is cleared with `keyrot repair <secret>` (docs/steps.md, Repair).\"";

/**
 * The CloudWatch dashboard, an Fn::Sub string over `${RotatorFunction}` and `${GraceKeeperFunction}`: each managed
 * secret's age, the rotation steps and their failures, what the grace keeper revoked, postponed or found overdue,
 * stuck or orphaned, and how long its passes take.
 */
export const DASHBOARD_BODY =
  "{\"widgets\":[{\"type\":\"metric\",\"x\":0,\"y\":0,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Days since rotation, per managed secret\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Maximum\",\"period\":3600,\"metrics\":[[{\"expression\":\"SEARCH('{keyrot,Secret} MetricName=\\\"DaysSinceRotation\\\"', 'Maximum', 3600)\",\"id\":\"days\",\"label\":\"\"}]]}},{\"type\":\"metric\",\"x\":12,\"y\":0,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Rotation steps and failed steps\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Sum\",\"period\":3600,\"metrics\":[[\"AWS/Lambda\",\"Invocations\",\"FunctionName\",\"${RotatorFunction}\",{\"label\":\"steps\"}],[\"AWS/Lambda\",\"Errors\",\"FunctionName\",\"${RotatorFunction}\",{\"label\":\"failed steps\"}]]}},{\"type\":\"metric\",\"x\":0,\"y\":6,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Revocations, postponements, overdue, stuck, orphans\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Sum\",\"period\":3600,\"metrics\":[[\"keyrot\",\"Revoked\"],[\"keyrot\",\"RevocationFailed\"],[\"keyrot\",\"Postponed\"],[\"keyrot\",\"Overdue\",{\"stat\":\"Maximum\"}],[\"keyrot\",\"Stuck\",{\"stat\":\"Maximum\"}],[\"keyrot\",\"Orphans\",{\"stat\":\"Maximum\"}]]}},{\"type\":\"metric\",\"x\":12,\"y\":6,\"width\":12,\"height\":6,\"properties\":{\"title\":\"Grace keeper pass duration (ms)\",\"region\":\"${AWS::Region}\",\"view\":\"timeSeries\",\"stat\":\"Maximum\",\"period\":900,\"metrics\":[[\"AWS/Lambda\",\"Duration\",\"FunctionName\",\"${GraceKeeperFunction}\"]]}}]}";
