//! The harness for tests against moto_server (started by `scripts/moto.sh`, which `make test` runs):
//! SDK clients pointed at it and helpers that play Secrets Manager's part (rotate-secret, labels,
//! values); [`World`] adds the simulator and the one rotator; [`cli`] runs the `keyrot` binary.

pub mod cli;
pub mod iam;
pub mod invariant;
#[cfg(feature = "sim-clock")]
pub mod lambda;
pub mod wire;
mod world;

pub use world::World;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use keyrot::config::Config;
use serde_json::{Value, json};

pub struct Moto {
    pub sm: aws_sdk_secretsmanager::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub rotator_arn: String,
    pub config: Config,
}

/// Everything the library logged in this test process (JSON lines), to scan for key values.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = LOGS.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once: keyrot at debug, everything else (the AWS SDK included) at
/// info, as JSON, the format the Lambda writes.
pub fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,keyrot=debug"))
            .with_writer(|| Capture)
            .try_init();
    });
}

/// Adds what a process of the real binaries wrote, so that the same scans cover it.
#[cfg(feature = "sim-clock")]
pub fn append_logs(bytes: &[u8]) {
    if let Ok(mut logs) = LOGS.lock() {
        logs.extend_from_slice(bytes);
    }
}

/// The log lines captured so far.
pub fn captured_logs() -> String {
    LOGS.lock()
        .map(|logs| String::from_utf8_lossy(&logs).into_owned())
        .unwrap_or_default()
}

pub async fn moto() -> Moto {
    capture_logs();
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| url.contains("127.0.0.1")),
        "these tests run against moto_server: run them with `make test` (or `scripts/moto.sh cargo test`)"
    );
    let config = Config::from_env().expect("KEYROT_* set by scripts/moto.sh");
    let sdk = keyrot::adapters::aws::sdk_config().await;
    Moto {
        sm: aws_sdk_secretsmanager::Client::new(&sdk),
        ddb: aws_sdk_dynamodb::Client::new(&sdk),
        rotator_arn: std::env::var("KEYROT_TEST_ROTATOR_ARN").expect("KEYROT_TEST_ROTATOR_ARN"),
        config,
    }
}

/// A name no other test uses, so tests can share one moto.
pub fn unique(prefix: &str) -> String {
    format!(
        "it/{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub type Labels = BTreeMap<String, Vec<String>>;

impl Moto {
    pub async fn create_secret(
        &self,
        prefix: &str,
        value: &Value,
        tags: &[(&str, &str)],
    ) -> String {
        self.create_secret_named(&unique(prefix), value, tags).await
    }

    /// Creates the secret `name` (an admin secret, outside the tests' `it/` names); returns its name.
    pub async fn create_secret_named(
        &self,
        name: &str,
        value: &Value,
        tags: &[(&str, &str)],
    ) -> String {
        self.sm
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .send()
            .await
            .expect("create secret");
        name.to_owned()
    }

    /// keyrot's audit log on this moto's two tables.
    pub fn audit_log(&self) -> keyrot::adapters::dynamodb::DynamoAuditLog {
        keyrot::adapters::dynamodb::DynamoAuditLog::new(
            self.ddb.clone(),
            &self.config.audit_table,
            &self.config.events_table,
        )
    }

    /// Creates the secret as [`Moto::create_secret`] does and records its key's ids as `keyrot onboard`
    /// would, so that keyrot may revoke that key later (docs/security.md, provenance).
    pub async fn onboard_secret(
        &self,
        prefix: &str,
        value: &Value,
        tags: &[(&str, &str)],
    ) -> String {
        self.onboard_secret_named(&unique(prefix), value, tags)
            .await
    }

    /// [`Moto::onboard_secret`] of the secret `name` (one of keyrot's own credentials, say).
    pub async fn onboard_secret_named(
        &self,
        name: &str,
        value: &Value,
        tags: &[(&str, &str)],
    ) -> String {
        use keyrot::domain::keys::KeyView;
        use keyrot::domain::provenance::{KeyIds, KeyRecord, Origin};
        use keyrot::ports::AuditLog;
        let name = self.create_secret_named(name, value, tags).await;
        let text = secrecy::SecretString::from(value.to_string());
        let managed = keyrot::domain::ManagedSecret::parse(&name, "onboarded", &text)
            .expect("an onboarded value parses");
        let record = KeyRecord::new(
            (&name, "onboard"),
            &managed.provider,
            &KeyView::of(&managed.api_key),
            KeyIds {
                key_id: managed.key_id.as_deref(),
                api_key_id: managed.api_key_id.as_deref(),
            },
            (Origin::Onboarded, chrono::Utc::now(), "it-operator"),
        );
        self.audit_log()
            .record_key(&record)
            .await
            .expect("key record");
        name
    }

    /// `aws secretsmanager rotate-secret`: returns the token of the new AWSPENDING version. With
    /// `immediately` false, moto (like AWS) only tests the configuration.
    pub async fn rotate_secret(&self, name: &str, immediately: bool) -> String {
        self.sm
            .rotate_secret()
            .secret_id(name)
            .rotation_lambda_arn(&self.rotator_arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .rotate_immediately(immediately)
            .send()
            .await
            .expect("rotate-secret");
        // moto answers a RotateImmediately=false call with the current version's id; the label is the truth.
        self.version_of(name, "AWSPENDING")
            .await
            .expect("rotate-secret creates an AWSPENDING version")
    }

    /// The version of the rotation RotateSecret just started: the empty placeholder under
    /// AWSPENDING, waited for (10 s at most) while another process calls RotateSecret.
    pub async fn placeholder_token(&self, name: &str) -> String {
        for _ in 0..100 {
            if let Some(pending) = self.version_of(name, "AWSPENDING").await
                && self
                    .value(name, "AWSPENDING", Some(&pending))
                    .await
                    .is_none()
            {
                return pending;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("rotate-secret made no pending version of {name}")
    }

    pub async fn arn(&self, name: &str) -> String {
        let out = self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
        out.arn().expect("an ARN").to_owned()
    }

    pub async fn labels(&self, name: &str) -> Labels {
        let out = self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
        out.version_ids_to_stages()
            .map(|m| {
                m.iter()
                    .filter(|(_, stages)| !stages.is_empty())
                    .map(|(id, stages)| {
                        let mut stages = stages.clone();
                        stages.sort();
                        (id.clone(), stages)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn version_of(&self, name: &str, stage: &str) -> Option<String> {
        self.labels(name)
            .await
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id)
    }

    /// The value of a version, or None while it is an empty placeholder.
    pub async fn value(&self, name: &str, stage: &str, version: Option<&str>) -> Option<Value> {
        let out = self
            .sm
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .ok()?;
        serde_json::from_str(out.secret_string()?).ok()
    }

    /// Every item keyrot wrote for the secret in both tables (the state table's, then its audit
    /// events in time order), as JSON-ish text lines, for assertions and leak scans.
    pub async fn items(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.partition(&format!("SECRET#{name}")).await
    }

    /// Every item of the partition `pk`, of the state table and then of the events table.
    pub async fn partition(&self, pk: &str) -> Vec<BTreeMap<String, String>> {
        let mut items = Vec::new();
        for table in [&self.config.audit_table, &self.config.events_table] {
            let out = self
                .ddb
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(
                    ":pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
                )
                .send()
                .await
                .expect("query");
            items.extend(out.items().iter().map(|item| {
                item.iter()
                    .map(|(k, v)| (k.clone(), attr_text(v)))
                    .collect()
            }));
        }
        items
    }

    /// One item of the state table, by its key, as DynamoDB holds it.
    pub async fn raw_item(
        &self,
        key: &[(&str, String); 2],
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut get = self.ddb.get_item().table_name(&self.config.audit_table);
        for (name, value) in key {
            get = get.key(
                *name,
                aws_sdk_dynamodb::types::AttributeValue::S(value.clone()),
            );
        }
        get.send().await.expect("GetItem").item().cloned()
    }

    /// Writes `item` to the state table whole, as it is.
    pub async fn put_raw_item(
        &self,
        item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    ) {
        self.ddb
            .put_item()
            .table_name(&self.config.audit_table)
            .set_item(Some(item))
            .send()
            .await
            .expect("PutItem");
    }

    /// Takes AWSPENDING off whichever version carries it, if any.
    pub async fn clear_pending(&self, name: &str) {
        if let Some(pending) = self.version_of(name, "AWSPENDING").await {
            self.sm
                .update_secret_version_stage()
                .secret_id(name)
                .version_stage("AWSPENDING")
                .remove_from_version_id(pending)
                .send()
                .await
                .expect("AWSPENDING removed");
        }
    }

    /// Tags the secret, as `aws secretsmanager tag-resource` would.
    pub async fn tag(&self, name: &str, key: &str, value: &str) {
        self.sm
            .tag_resource()
            .secret_id(name)
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await
            .expect("TagResource");
    }

    pub async fn untag(&self, name: &str, key: &str) {
        self.sm
            .untag_resource()
            .secret_id(name)
            .tag_keys(key)
            .send()
            .await
            .expect("UntagResource");
    }

    /// The secret's tags.
    pub async fn tags(&self, name: &str) -> BTreeMap<String, String> {
        let out = self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
        out.tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect()
    }

    /// The trigger of each audit event of the secret that has one, oldest first.
    pub async fn triggers(&self, name: &str) -> Vec<String> {
        self.items(name)
            .await
            .into_iter()
            .filter(|item| item.get("sk").is_some_and(|sk| sk.starts_with("EVENT#")))
            .filter_map(|item| item.get("trigger").cloned())
            .filter(|trigger| !trigger.is_empty())
            .collect()
    }

    /// (action, outcome) of each audit event of the secret, oldest first.
    pub async fn audit_trail(&self, name: &str) -> Vec<(String, String)> {
        self.items(name)
            .await
            .into_iter()
            .filter(|item| item.get("sk").is_some_and(|sk| sk.starts_with("EVENT#")))
            .map(|item| (item["action"].clone(), item["outcome"].clone()))
            .collect()
    }
}

fn attr_text(value: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) | A::N(s) => s.clone(),
        A::L(list) => list.iter().map(attr_text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

/// An SQS queue subscribed to the alert topic for one secret (a filter policy on the `secret`
/// attribute), read with the AWS CLI as an operator's tooling would.
pub struct AlertQueue {
    url: String,
}

/// Runs the AWS CLI against moto and returns its JSON answer (Null when it prints nothing).
pub fn aws(args: &[&str]) -> Value {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let out = Command::new("aws")
        .args(["--endpoint-url", &endpoint])
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("aws CLI on PATH");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("aws CLI prints JSON")
}

impl AlertQueue {
    pub fn subscribe(topic_arn: &str, secret: &str) -> Self {
        let queue = unique("alerts").replace('/', "-");
        let url = aws(&["sqs", "create-queue", "--queue-name", &queue])["QueueUrl"]
            .as_str()
            .expect("QueueUrl")
            .to_owned();
        let arn = aws(&[
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            &url,
            "--attribute-names",
            "QueueArn",
        ])["Attributes"]["QueueArn"]
            .as_str()
            .expect("QueueArn")
            .to_owned();
        let filter = json!({"FilterPolicy": json!({"secret": [secret]}).to_string()}).to_string();
        aws(&[
            "sns",
            "subscribe",
            "--topic-arn",
            topic_arn,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            &arn,
            "--attributes",
            &filter,
        ]);
        AlertQueue { url }
    }

    /// Every SNS envelope delivered so far.
    pub fn drain(&self) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let out = aws(&[
                "sqs",
                "receive-message",
                "--queue-url",
                &self.url,
                "--max-number-of-messages",
                "10",
                "--wait-time-seconds",
                "0",
            ]);
            let Some(messages) = out["Messages"].as_array().filter(|m| !m.is_empty()) else {
                break;
            };
            for message in messages {
                let body: Value = serde_json::from_str(message["Body"].as_str().unwrap_or("{}"))
                    .expect("SNS envelope");
                all.push(body);
                aws(&[
                    "sqs",
                    "delete-message",
                    "--queue-url",
                    &self.url,
                    "--receipt-handle",
                    message["ReceiptHandle"].as_str().unwrap_or_default(),
                ]);
            }
        }
        all
    }
}

/// Fails if `haystack` holds `key` or any 8-character piece of its secret part. The public prefix every
/// key of its kind shares (`sk-admin-`, `sk-svcacct-`, `sk-ant-api03-`) is no secret and is skipped.
pub fn assert_no_key(haystack: &str, key: &str, what: &str) {
    assert!(!haystack.contains(key), "{what} contains a full key value");
    let chars: Vec<char> = key.chars().collect();
    let public = chars
        .iter()
        .take(14)
        .rposition(|c| *c == '-' || *c == '_')
        .map_or(0, |i| i + 1);
    // Pieces lie wholly within the secret part: one that straddles the prefix is mostly public text,
    // and names such as `it/admin-2f…` would match it by chance.
    for start in public..chars.len().saturating_sub(7) {
        let piece: String = chars[start..start + 8].iter().collect();
        assert!(
            !haystack.contains(&piece),
            "{what} contains the key piece {piece:?}"
        );
    }
}

/// The body of one request moto's recorder wrote down (base64 when it was not text).
pub fn recorded_body(entry: &Value) -> String {
    let raw = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool() == Some(true) {
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
    }
    raw.to_owned()
}

/// The system clock, `.0` later: a grace keeper's pass after a grace period or an hour of use.
pub struct Later(pub chrono::TimeDelta);

impl keyrot::ports::Clock for Later {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}
