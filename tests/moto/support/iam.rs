//! IAM, proven rather than linted: the policies `template.yaml` gives each function (and the CLI's read
//! commands), read from the template with their intrinsics resolved for a moto deployment; a moto of
//! its own with IAM enforcement on (`INITIAL_NO_AUTH_ACTION_COUNT`) and one IAM user per policy; and an
//! evaluator for what moto does not check.
//!
//! moto authorizes each request by its action only: it evaluates every statement against the resource
//! `*`, and conditions not at all (moto/iam/access_control.py says so). So the users moto enforces hold
//! each policy's allowed actions on `*` (with `dynamodb:TransactWriteItems` beside `PutItem`, since moto
//! authorizes the API's name where AWS authorizes each item's action), and every request moto recorded
//! is then evaluated here against the exact policy, resources, Deny statements and conditions included.

use std::collections::BTreeMap;
use std::process::Stdio;

use aws_sdk_secretsmanager::config::Credentials;
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// What the template's parameters, pseudo parameters and resources stand for in the moto deployment.
pub struct Deployment {
    pub stack: String,
    pub managed_prefix: String,
    pub admin_prefix: String,
    pub state_table: String,
    pub events_table: String,
    pub topic_arn: String,
}

impl Deployment {
    fn table_arn(&self, table: &str) -> String {
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
    }

    fn log_group_arn(&self, function: &str) -> String {
        format!(
            "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{}-{function}:*",
            self.stack
        )
    }

    /// `Ref NAME`.
    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::Partition" => "aws".into(),
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::StackName" => self.stack.clone(),
            "ManagedSecretPrefix" => self.managed_prefix.clone(),
            "AdminSecretPrefix" => self.admin_prefix.clone(),
            "AuditTable" => self.state_table.clone(),
            "EventsTable" => self.events_table.clone(),
            "AlertTopic" => self.topic_arn.clone(),
            other => panic!("the template refers to {other}, which this test does not resolve"),
        }
    }

    /// `GetAtt NAME.Arn`.
    fn arn_of(&self, name: &str) -> String {
        match name {
            "AuditTable" => self.table_arn(&self.state_table),
            "EventsTable" => self.table_arn(&self.events_table),
            "AlertKey" => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/alert-key"),
            "RotatorLogGroup" => self.log_group_arn("rotator"),
            "GraceKeeperLogGroup" => self.log_group_arn("grace-keeper"),
            other => panic!("the template asks for {other}.Arn, which this test does not resolve"),
        }
    }

    fn attribute(&self, path: &str) -> String {
        match path.split_once('.') {
            Some((name, "Arn")) => self.arn_of(name),
            _ => panic!("the template asks for {path}, which this test does not resolve"),
        }
    }

    /// `Sub '...${X}...${Y.Arn}...'`.
    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("a closed ${") + start;
            let name = &rest[start + 2..end];
            out.push_str(&if name.contains('.') {
                self.attribute(name)
            } else {
                self.reference(name)
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A template value as JSON, its intrinsic functions (`!Ref`, `!Sub`, `!GetAtt`) resolved.
    fn resolve(&self, value: &Yaml) -> Value {
        match value {
            Yaml::Tagged(tagged) => {
                let text = tagged.value.as_str().unwrap_or_else(|| {
                    panic!(
                        "{} with a non-string argument is not resolved here",
                        tagged.tag
                    )
                });
                Value::String(match tagged.tag.to_string().as_str() {
                    "!Ref" => self.reference(text),
                    "!Sub" => self.substitute(text),
                    "!GetAtt" => self.attribute(text),
                    other => panic!("the intrinsic {other} is not resolved here"),
                })
            }
            Yaml::Mapping(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), self.resolve(v)))
                    .collect(),
            ),
            Yaml::Sequence(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Number(n) => json!(n.as_f64()),
            Yaml::Null => Value::Null,
        }
    }

    /// The policy document of `resource` in template.yaml: a role's one inline policy, or a managed
    /// policy's document.
    pub fn template_policy(&self, resource: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml");
        let template: Yaml = serde_yaml_ng::from_str(&text).expect("template.yaml parses");
        let properties = &template["Resources"][resource]["Properties"];
        let document = if properties["PolicyDocument"].is_mapping() {
            &properties["PolicyDocument"]
        } else {
            &properties["Policies"][0]["PolicyDocument"]
        };
        assert!(document.is_mapping(), "{resource} has no policy document");
        self.resolve(document)
    }
}

/// What IAM decides for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

/// One authorized action of one request, as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub action: String,
    pub resource: String,
    /// `aws:TagKeys`, for TagResource and UntagResource.
    pub tag_keys: Vec<String>,
    /// `dynamodb:LeadingKeys`: the partition key an item request names.
    pub leading_keys: Vec<String>,
    /// `secretsmanager:ResourceTag/*`: the tags of the secret the request names, as the test knows
    /// them (moto's recording does not carry them).
    pub resource_tags: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Request {
        Request {
            action: action.to_owned(),
            resource: resource.to_owned(),
            tag_keys: Vec::new(),
            leading_keys: Vec::new(),
            resource_tags: BTreeMap::new(),
        }
    }
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The recorded requests on the secret `name`, given the tags it had.
pub fn tagged(requests: &mut [Request], name: &str, tags: &[(&str, &str)]) {
    let arn = secret_arn(name);
    for request in requests.iter_mut().filter(|r| r.resource == arn) {
        request.resource_tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            (pi, ti) = (pi + 1, ti + 1);
        } else if pi < p.len() && p[pi] == '*' {
            (star, mark, pi) = (Some(pi), ti, pi + 1);
        } else if let Some(s) = star {
            (pi, mark, ti) = (s + 1, mark + 1, mark + 1);
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the statement's condition holds. Only the operators keyrot's policies use are known; any
/// other fails the test rather than pass unchecked.
fn condition_holds(condition: Option<&Value>, request: &Request) -> bool {
    let Some(Value::Object(operators)) = condition else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        let keys = keys.as_object().expect("condition keys");
        keys.iter()
            .all(|(key, allowed)| match (operator.as_str(), key.as_str()) {
                ("ForAllValues:StringEquals", "aws:TagKeys") => {
                    let allowed = strings(allowed);
                    request
                        .tag_keys
                        .iter()
                        .all(|k| allowed.contains(&k.as_str()))
                }
                ("ForAnyValue:StringNotEquals", "aws:TagKeys") => {
                    let listed = strings(allowed);
                    request
                        .tag_keys
                        .iter()
                        .any(|k| !listed.contains(&k.as_str()))
                }
                ("ForAllValues:StringEquals", "dynamodb:LeadingKeys") => {
                    let allowed = strings(allowed);
                    // No key named (a Query, a Scan) proves nothing here: only item requests pass.
                    !request.leading_keys.is_empty()
                        && request
                            .leading_keys
                            .iter()
                            .all(|k| allowed.contains(&k.as_str()))
                }
                (equality @ ("StringEquals" | "StringNotEquals"), tag)
                    if tag.starts_with("secretsmanager:ResourceTag/") =>
                {
                    let name = &tag["secretsmanager:ResourceTag/".len()..];
                    // A tag the secret lacks equals nothing, so StringNotEquals holds for it.
                    let equal =
                        request.resource_tags.get(name).map(String::as_str) == allowed.as_str();
                    equal == (equality == "StringEquals")
                }
                _ => panic!("the condition {operator} {key} is not evaluated here"),
            })
    })
}

fn statement_applies(statement: &Value, request: &Request) -> bool {
    assert!(
        statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
        "NotAction/NotResource are not evaluated here"
    );
    let action = strings(&statement["Action"]).iter().any(|a| {
        wildcard(
            &a.to_ascii_lowercase(),
            &request.action.to_ascii_lowercase(),
        )
    });
    let resource = strings(&statement["Resource"])
        .iter()
        .any(|r| wildcard(r, &request.resource));
    action && resource && condition_holds(statement.get("Condition"), request)
}

/// IAM's evaluation of one identity policy: an applicable Deny wins, else an applicable Allow allows.
pub fn decide(policy: &Value, request: &Request) -> Decision {
    let statements = policy["Statement"].as_array().expect("statements");
    let applies = |effect: &str| {
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .any(|s| statement_applies(s, request))
    };
    if applies("Deny") {
        Decision::ExplicitDeny
    } else if applies("Allow") {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

/// The policy moto can enforce: the allowed actions of `policy`, on every resource.
pub fn actions_only(policy: &Value) -> Value {
    let mut actions: Vec<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| strings(&s["Action"]).into_iter().map(str::to_owned))
        .collect();
    if actions.iter().any(|a| a == "dynamodb:PutItem") {
        actions.push("dynamodb:TransactWriteItems".into());
    }
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
}

/// A moto_server of this test's own, with IAM enforcement on after the three calls that make its
/// administrator, and its request recorder running.
pub struct EnforcingMoto {
    pub endpoint: String,
    pub admin: aws_config::SdkConfig,
    pub admin_key: (String, String),
    recording: std::path::PathBuf,
    process: tokio::process::Child,
}

impl Drop for EnforcingMoto {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let _ = std::fs::remove_file(&self.recording);
    }
}

pub async fn sdk(endpoint: &str, key: &(String, String)) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new(&key.0, &key.1, None, None, "iam-test"))
        .load()
        .await
}

impl EnforcingMoto {
    pub async fn start() -> EnforcingMoto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let recording = std::env::temp_dir().join(format!("keyrot-iam-{port}.jsonl"));
        // scripts/moto_server.py says why the signature check is off.
        let server = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_server.py");
        let process = tokio::process::Command::new("python3")
            .args([
                server,
                "--no-signature-check",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with moto (the venv is on PATH under scripts/moto.sh)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{endpoint}/moto-api/"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let anyone = ("testing".to_owned(), "testing".to_owned());
        let everything = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let admin = create_user(&endpoint, &anyone, "admin", &everything).await;
        http.post(format!("{endpoint}/moto-api/config"))
            .json(&json!({"lambda": {"use_docker": false}}))
            .send()
            .await
            .expect("moto config");
        EnforcingMoto {
            admin: sdk(&endpoint, &admin).await,
            admin_key: admin,
            endpoint,
            recording,
            process,
        }
    }

    /// A user holding exactly `policy` (as moto can enforce it); returns its access key.
    pub async fn user(&self, name: &str, policy: &Value) -> (String, String) {
        create_user(&self.endpoint, &self.admin_key, name, policy).await
    }

    pub async fn start_recording(&self) {
        let http = reqwest::Client::new();
        for action in ["reset-recording", "start-recording"] {
            http.post(format!("{}/moto-api/recorder/{action}", self.endpoint))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .unwrap_or_else(|err| panic!("{action}: {err}"));
        }
    }

    /// Every request recorded since [`Self::start_recording`], as the IAM requests it makes, by the
    /// access key that signed it.
    pub async fn recorded(&self) -> BTreeMap<String, Vec<Request>> {
        let http = reqwest::Client::new();
        http.post(format!(
            "{}/moto-api/recorder/stop-recording",
            self.endpoint
        ))
        .send()
        .await
        .expect("stop-recording");
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        let mut by_key: BTreeMap<String, Vec<Request>> = BTreeMap::new();
        for entry in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let Some(key) = signing_key(&entry) else {
                continue;
            };
            by_key.entry(key).or_default().extend(requests_of(&entry));
        }
        by_key
    }
}

/// Creates the user `name` holding `policy` with the AWS CLI, as `key` (the caller's access key);
/// returns the new user's access key.
async fn create_user(
    endpoint: &str,
    key: &(String, String),
    name: &str,
    policy: &Value,
) -> (String, String) {
    let aws = |args: Vec<String>| {
        let mut command = tokio::process::Command::new("aws");
        command
            .args([
                "--endpoint-url",
                endpoint,
                "--region",
                REGION,
                "--output",
                "json",
                "iam",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &key.0)
            .env("AWS_SECRET_ACCESS_KEY", &key.1)
            .env_remove("AWS_SESSION_TOKEN");
        async move {
            let out = command
                .output()
                .await
                .expect("the AWS CLI (on PATH under scripts/moto.sh)");
            assert!(
                out.status.success(),
                "aws iam: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
        }
    };
    aws(vec![
        "create-user".into(),
        "--user-name".into(),
        name.into(),
    ])
    .await;
    aws(vec![
        "put-user-policy".into(),
        "--user-name".into(),
        name.into(),
        "--policy-name".into(),
        format!("{name}-policy"),
        "--policy-document".into(),
        policy.to_string(),
    ])
    .await;
    let created = aws(vec![
        "create-access-key".into(),
        "--user-name".into(),
        name.into(),
    ])
    .await;
    let key = &created["AccessKey"];
    (
        key["AccessKeyId"].as_str().expect("AccessKeyId").to_owned(),
        key["SecretAccessKey"]
            .as_str()
            .expect("SecretAccessKey")
            .to_owned(),
    )
}

fn header<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?
        .1
        .as_str()
}

fn signing_key(entry: &Value) -> Option<String> {
    let auth = header(entry, "Authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

fn secret_arn(id: &str) -> String {
    if id.starts_with("arn:") {
        return id.to_owned();
    }
    // A secret's ARN ends in a random suffix; policies match it with the name's prefix and `*`.
    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{id}-AbCdEf")
}

fn table_arn(json: &Value) -> String {
    let table = json["TableName"].as_str().unwrap_or_default();
    let arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}");
    match json["IndexName"].as_str() {
        Some(index) => format!("{arn}/index/{index}"),
        None => arn,
    }
}

/// The IAM requests one recorded API call makes.
fn requests_of(entry: &Value) -> Vec<Request> {
    let text = super::recorded_body(entry);
    if let Some(target) = header(entry, "X-Amz-Target") {
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (service, operation) = target.split_once('.').unwrap_or_default();
        return match service {
            "secretsmanager" => {
                let resource = json["SecretId"].as_str().map_or("*".to_owned(), secret_arn);
                let mut request = Request::new(&format!("secretsmanager:{operation}"), &resource);
                request.tag_keys = strings(&json["TagKeys"])
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                vec![request]
            }
            s if s.starts_with("DynamoDB_") => dynamodb_requests(operation, &json),
            other => panic!("a JSON call to {other}, which this test does not map"),
        };
    }
    let form: BTreeMap<String, String> = reqwest::Url::parse(&format!("http://form/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default();
    match form.get("Action").map(String::as_str) {
        Some("Publish") => vec![Request::new("sns:Publish", &form["TopicArn"])],
        Some("DescribeStacks") => vec![Request::new(
            "cloudformation:DescribeStacks",
            &format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{}/0",
                form.get("StackName").map_or("*", String::as_str)
            ),
        )],
        // GetCallerIdentity needs no permission.
        Some("GetCallerIdentity") => Vec::new(),
        other => panic!("a call {other:?}, which this test does not map: {form:?}"),
    }
}

fn dynamodb_requests(operation: &str, json: &Value) -> Vec<Request> {
    if operation != "TransactWriteItems" {
        let mut request = Request::new(&format!("dynamodb:{operation}"), &table_arn(json));
        request.leading_keys = json["Key"]["pk"]["S"]
            .as_str()
            .or(json["Item"]["pk"]["S"].as_str())
            .map(str::to_owned)
            .into_iter()
            .collect();
        return vec![request];
    }
    // AWS authorizes a transaction by the action of each of its items.
    json["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| item.as_object().into_iter().flatten())
        .map(|(kind, op)| {
            let action = match kind.as_str() {
                "Put" => "dynamodb:PutItem",
                "Delete" => "dynamodb:DeleteItem",
                "Update" => "dynamodb:UpdateItem",
                "ConditionCheck" => "dynamodb:ConditionCheckItem",
                other => panic!("a transaction item {other}"),
            };
            Request::new(action, &table_arn(op))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(wildcard(
            "arn:aws:secretsmanager:*:secret:it/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:it/a-AbCdEf"
        ));
        assert!(!wildcard(
            "arn:aws:secretsmanager:*:secret:it/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:keyrot-admin/a"
        ));
        assert!(wildcard("kms:generatedatakey*", "kms:generatedatakey"));
        assert!(wildcard("a?c", "abc") && !wildcard("a?c", "ac"));
        assert!(wildcard("*", "") && !wildcard("", "x"));
    }

    #[test]
    fn a_deny_wins_and_conditions_narrow_an_allow() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": "secretsmanager:UntagResource", "Resource": "*",
             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}},
            {"Effect": "Deny", "Action": "secretsmanager:PutSecretValue", "Resource": "arn:admin/*"}]});
        assert_eq!(
            decide(
                &policy,
                &Request::new("secretsmanager:PutSecretValue", "arn:admin/x")
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(
                &policy,
                &Request::new("secretsmanager:PutSecretValue", "arn:it/x")
            ),
            Decision::Allowed
        );
        assert_eq!(
            decide(&policy, &Request::new("dynamodb:PutItem", "arn:t")),
            Decision::ImplicitDeny
        );
        let narrow = json!({"Statement": [policy["Statement"][1].clone()]});
        let mut untag = Request::new("secretsmanager:UntagResource", "arn:it/x");
        untag.tag_keys = vec!["a".into()];
        assert_eq!(decide(&narrow, &untag), Decision::Allowed);
        untag.tag_keys.push("b".into());
        assert_eq!(decide(&narrow, &untag), Decision::ImplicitDeny);
    }
}
