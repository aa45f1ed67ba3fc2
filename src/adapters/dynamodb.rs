//! [`AuditLog`] on keyrot's two DynamoDB tables (docs/tables.md): the state table (step guards,
//! revocations, key records, deployments, alert dedupe) and the events table, to which the functions
//! may only add. Every write is conditional, so a retried write never makes a second item.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::adapters::aws::{error_code, sdk_error};
use crate::domain::Step;
use crate::domain::audit::{
    Action, AuditEvent, Confirmation, Expected, Outcome, Revocation, RevocationStatus,
};
use crate::domain::keys::is_fingerprint;
use crate::domain::provenance::{KeyRecord, Origin};
use crate::domain::secret::Provider;
use crate::error::{Error, Result, Transience};
use crate::ports::{Alert, AlertKind, AuditLog, Listed, ParkedAlert, Severity};

const SYSTEM: &str = "dynamodb";
/// GSI over `gsi1pk = MONTH#YYYY-MM`, `gsi1sk = <rfc3339>#<name>`: everything in one month.
pub const MONTH_INDEX: &str = "gsi1";
/// Sparse GSI over `gsi2pk = REVOKE#PENDING`, `gsi2sk = <due>`: revocations waiting for their time;
/// and over `gsi2pk = REVOKE#TASK`: revocations waiting for a person.
pub const PENDING_REVOCATIONS_INDEX: &str = "gsi2";
const PENDING_PARTITION: &str = "REVOKE#PENDING";
const TASK_PARTITION: &str = "REVOKE#TASK";
const NOT_EXISTS: &str = "attribute_not_exists(pk)";

#[derive(Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
    events: EventsTable,
}

/// The audit events' own table: the functions add to it and the CLI queries it; nothing changes or
/// deletes an event (IAM denies both).
#[derive(Clone)]
pub struct EventsTable {
    client: Client,
    name: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoAuditLog {
    /// Sets a revocation's status unconditionally (a revoked or cancelled revocation leaves the pending
    /// index). Not part of the `AuditLog` port: every write keyrot's processes make goes through
    /// `crate::revocation`, conditional on what they read; this is for tests.
    pub async fn set_revocation_status(
        &self,
        secret_name: &str,
        old_version_id: &str,
        status: RevocationStatus,
    ) -> Result<()> {
        // A status set this way is nobody's claim.
        let update = if status.is_owed() {
            "SET #status = :status REMOVE claimed_at"
        } else {
            // Leaving the sparse index is what takes the item off the grace keeper's list.
            "SET #status = :status REMOVE gsi2pk, gsi2sk, claimed_at"
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(format!("REVOKE#{old_version_id}")))
            .update_expression(update)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "UpdateItem(revocation status)", &err))?;
        Ok(())
    }

    /// The log over the state table `table` and the events table `events`.
    pub fn new(client: Client, table: impl Into<String>, events: impl Into<String>) -> Self {
        DynamoAuditLog {
            events: EventsTable::new(client.clone(), events),
            client,
            table: table.into(),
        }
    }

    /// The events table, for reading the audit trail back.
    pub fn events(&self) -> &EventsTable {
        &self.events
    }

    fn put(&self, table: &str, item: Item) -> Result<Put> {
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(NOT_EXISTS)
            .build()
            .map_err(|err| Error::external(SYSTEM, "build Put", err, Transience::Final))
    }

    /// Writes an item of the state table unless its key exists; returns whether it wrote.
    async fn put_once(&self, item: Item, what: &str) -> Result<bool> {
        self.put_when(item, NOT_EXISTS, &[], what).await
    }

    /// Puts `item` if `condition` holds, false when it does not. The condition names the item's
    /// status `#status` and the `values` by their placeholders (`:status`, `:claimed_at`).
    async fn put_when(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, String)],
        what: &str,
    ) -> Result<bool> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        if condition.contains("#status") {
            put = put.expression_attribute_names("#status", "status");
        }
        for (placeholder, value) in values {
            put = put.expression_attribute_values(*placeholder, s(value));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if error_code(&err) == Some("ConditionalCheckFailedException") => Ok(false),
            Err(err) => Err(sdk_error(SYSTEM, &format!("PutItem({what})"), &err)),
        }
    }
}

pub fn secret_pk(secret_name: &str) -> String {
    format!("SECRET#{secret_name}")
}

pub fn rfc3339_ms(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn deploy_sk(token: &str, target: &str) -> String {
    format!("DEPLOY#{token}#{target}")
}

fn token8(token: &str) -> String {
    token.chars().take(8).collect()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// An event's item. Its sort key ends with a digest of everything else the event says, so that two
/// different events of one millisecond, action and token prefix never share a key (the conditional
/// put would drop the second), while the same event written twice still lands once.
fn event_item(event: &AuditEvent) -> Item {
    let mut item = event_attributes(event);
    let content: std::collections::BTreeMap<&String, String> =
        item.iter().map(|(k, v)| (k, format!("{v:?}"))).collect();
    let digest = Sha256::digest(format!("{content:?}").as_bytes());
    let sk = format!(
        "EVENT#{}#{}#{}#{}",
        rfc3339_ms(event.at),
        event.action,
        token8(&event.version_id),
        hex::encode(&digest[..4])
    );
    item.insert("sk".to_owned(), s(sk));
    item
}

fn event_attributes(event: &AuditEvent) -> Item {
    let at = rfc3339_ms(event.at);
    let mut item: Item = [
        ("pk", s(secret_pk(&event.secret_name))),
        ("gsi1pk", s(format!("MONTH#{}", event.at.format("%Y-%m")))),
        ("gsi1sk", s(format!("{at}#{}", event.secret_name))),
        ("kind", s("event")),
        ("at", s(at)),
        ("secret_arn", s(&event.secret_arn)),
        ("secret_name", s(&event.secret_name)),
        ("action", s(event.action.as_str())),
        ("outcome", s(event.outcome.as_str())),
        ("version_id", s(&event.version_id)),
        ("provider", s(&event.provider)),
        ("trigger", s(&event.trigger)),
        ("actor", s(&event.actor)),
        (
            "duration_ms",
            AttributeValue::N(event.duration_ms.to_string()),
        ),
        (
            "targets",
            AttributeValue::L(event.targets.iter().map(s).collect()),
        ),
        ("retryable", AttributeValue::Bool(event.retryable)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, value) in [
        ("old_key_hint", &event.old_key_hint),
        ("new_key_hint", &event.new_key_hint),
        ("error", &event.error),
    ] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            item.insert(name.to_owned(), s(value));
        }
    }
    item
}

fn revocation_item(revocation: &Revocation) -> Item {
    let mut item: Item = [
        ("pk", s(secret_pk(&revocation.secret_name))),
        ("sk", s(format!("REVOKE#{}", revocation.old_version_id))),
        ("kind", s("revocation")),
        ("secret_name", s(&revocation.secret_name)),
        ("secret_arn", s(&revocation.secret_arn)),
        ("old_version_id", s(&revocation.old_version_id)),
        ("provider", s(revocation.provider.as_str())),
        ("fingerprint", s(&revocation.fingerprint)),
        ("hint", s(&revocation.hint)),
        ("due", s(rfc3339_ms(revocation.due))),
        (
            "attempts",
            AttributeValue::N(revocation.attempts.to_string()),
        ),
        (
            "postponements",
            AttributeValue::N(revocation.postponements.to_string()),
        ),
        ("status", s(revocation.status.as_str())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, value) in [
        ("project_id", &revocation.project_id),
        ("key_id", &revocation.key_id),
        ("api_key_id", &revocation.api_key_id),
        ("admin_key_secret", &revocation.admin_key_secret),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(at) = revocation.claimed_at {
        item.insert("claimed_at".to_owned(), s(rfc3339_ms(at)));
    }
    if let Some(at) = revocation.revoke_sent_at {
        item.insert("revoke_sent_at".to_owned(), s(rfc3339_ms(at)));
    }
    if let Some(confirmed) = &revocation.confirmed {
        item.insert("confirmed_at".to_owned(), s(rfc3339_ms(confirmed.at)));
        item.insert("confirmed_by".to_owned(), s(&confirmed.by));
    }
    // The sparse index holds what is still to do: revocations waiting for their time, and tasks
    // waiting for a person.
    let waiting = match revocation.status {
        status if status.is_owed() => Some(PENDING_PARTITION),
        RevocationStatus::Manual => Some(TASK_PARTITION),
        _ => None,
    };
    if let Some(partition) = waiting {
        item.insert("gsi2pk".to_owned(), s(partition));
        item.insert("gsi2sk".to_owned(), s(rfc3339_ms(revocation.due)));
    }
    item
}

fn key_sk(fingerprint: &str) -> String {
    format!("KEY#{fingerprint}")
}

fn key_item(record: &KeyRecord) -> Item {
    let mut item: Item = [
        ("pk", s(secret_pk(&record.secret_name))),
        ("sk", s(key_sk(&record.fingerprint))),
        ("kind", s("key")),
        ("secret_name", s(&record.secret_name)),
        ("fingerprint", s(&record.fingerprint)),
        ("provider", s(record.provider.as_str())),
        ("origin", s(record.origin.as_str())),
        ("version_id", s(&record.version_id)),
        ("at", s(rfc3339_ms(record.at))),
        ("by", s(&record.by)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, value) in [
        ("project_id", &record.project_id),
        ("key_id", &record.key_id),
        ("api_key_id", &record.api_key_id),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    item
}

fn key_from_item(item: &Item) -> std::result::Result<KeyRecord, String> {
    let read = Read(item);
    Ok(KeyRecord {
        secret_name: read.text("secret_name")?,
        fingerprint: read.text("fingerprint")?,
        provider: read.parsed("provider", Provider::parse)?,
        project_id: read.optional("project_id"),
        key_id: read.optional("key_id"),
        api_key_id: read.optional("api_key_id"),
        origin: read.parsed("origin", Origin::parse)?,
        version_id: read.optional("version_id").unwrap_or_default(),
        at: read.time("at")?,
        by: read.optional("by").unwrap_or_default(),
    })
}

/// One stored item read field by field: every parser of an item reads through it, and what it says
/// is wrong names the item (`pk/sk`) and the field, so a malformed record is reported, never skipped.
struct Read<'a>(&'a Item);

impl Read<'_> {
    fn wrong(&self, field: &str, problem: impl std::fmt::Display) -> String {
        let key = |name| text(self.0, name).unwrap_or_else(|| "?".to_owned());
        format!(
            "unreadable item {}/{}: field {field} {problem}",
            key("pk"),
            key("sk")
        )
    }

    fn optional(&self, field: &str) -> Option<String> {
        text(self.0, field)
    }

    fn text(&self, field: &str) -> std::result::Result<String, String> {
        self.optional(field)
            .ok_or_else(|| self.wrong(field, "is missing"))
    }

    /// A word of keyrot's vocabulary (a status, a provider), refused when keyrot does not know it.
    fn parsed<T>(
        &self,
        field: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> std::result::Result<T, String> {
        let value = self.text(field)?;
        parse(&value)
            .ok_or_else(|| self.wrong(field, format!("is {value:?}, which keyrot does not know")))
    }

    fn time(&self, field: &str) -> std::result::Result<DateTime<Utc>, String> {
        let value = self.text(field)?;
        DateTime::parse_from_rfc3339(&value)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| self.wrong(field, format!("is {value:?}, not an RFC 3339 time")))
    }

    fn optional_time(&self, field: &str) -> std::result::Result<Option<DateTime<Utc>>, String> {
        match self.optional(field) {
            None => Ok(None),
            Some(_) => self.time(field).map(Some),
        }
    }

    /// A counter: 0 when absent (records from before it existed), an error when it is no count. A
    /// counter read as 0 could reset a limit (attempts, postponements) that it keeps.
    fn count(&self, field: &str) -> std::result::Result<u32, String> {
        match self.0.get(field) {
            None => Ok(0),
            Some(value) => value
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| self.wrong(field, "is not a count")),
        }
    }
}

/// A stored record that keyrot cannot read, as the error of a read that needed it.
fn unreadable(what: &str, problem: String) -> Error {
    Error::external(SYSTEM, what, problem, Transience::Final)
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn revocation_from_item(item: &Item) -> std::result::Result<Revocation, String> {
    let read = Read(item);
    // The fingerprint ties the record to its key: without it no check could tell whether the key
    // is in service before it is revoked.
    let fingerprint = read.text("fingerprint")?;
    if !is_fingerprint(&fingerprint) {
        return Err(read.wrong("fingerprint", "is not 12 hex characters"));
    }
    if read.optional("kind").as_deref() != Some("revocation") {
        return Err(read.wrong("kind", "is not revocation"));
    }
    Ok(Revocation {
        secret_name: read.text("secret_name")?,
        secret_arn: read.optional("secret_arn").unwrap_or_default(),
        old_version_id: read.text("old_version_id")?,
        provider: read.parsed("provider", Provider::parse)?,
        project_id: read.optional("project_id"),
        key_id: read.optional("key_id"),
        api_key_id: read.optional("api_key_id"),
        admin_key_secret: read.optional("admin_key_secret"),
        fingerprint,
        hint: read.optional("hint").unwrap_or_default(),
        due: read.time("due")?,
        postponements: read.count("postponements")?,
        attempts: read.count("attempts")?,
        status: read.parsed("status", RevocationStatus::parse)?,
        claimed_at: read.optional_time("claimed_at")?,
        revoke_sent_at: read.optional_time("revoke_sent_at")?,
        confirmed: read.optional_time("confirmed_at")?.map(|at| Confirmation {
            at,
            by: read.optional("confirmed_by").unwrap_or_default(),
        }),
    })
}

pub(crate) fn event_from_item(item: &Item) -> std::result::Result<AuditEvent, String> {
    let read = Read(item);
    let outcome = read.parsed("outcome", |text| match text {
        "succeeded" => Some(Outcome::Succeeded),
        "failed" => Some(Outcome::Failed),
        "skipped" => Some(Outcome::Skipped),
        _ => None,
    })?;
    Ok(AuditEvent {
        at: read.time("at")?,
        secret_arn: read.optional("secret_arn").unwrap_or_default(),
        secret_name: read.text("secret_name")?,
        action: read.parsed("action", Action::parse)?,
        outcome,
        version_id: read.optional("version_id").unwrap_or_default(),
        provider: read.optional("provider").unwrap_or_default(),
        old_key_hint: read.optional("old_key_hint"),
        new_key_hint: read.optional("new_key_hint"),
        trigger: read.optional("trigger").unwrap_or_default(),
        actor: read.optional("actor").unwrap_or_default(),
        targets: item
            .get("targets")
            .and_then(|v| v.as_l().ok())
            .map(|list| list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        duration_ms: item
            .get("duration_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        error: read.optional("error"),
        retryable: matches!(item.get("retryable"), Some(AttributeValue::Bool(true))),
    })
}

/// The access patterns of the events table, each served by one Query (paginated to the end), never a
/// Scan.
impl EventsTable {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        EventsTable {
            client,
            name: name.into(),
        }
    }

    /// Adds an event; an event already there (a repeated write) is left as it is.
    async fn add(&self, event: &AuditEvent) -> Result<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(event_item(event)))
            .condition_expression(NOT_EXISTS);
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(err) => Err(sdk_error(SYSTEM, "PutItem(audit event)", &err)),
        }
    }

    /// The history of one secret, newest first, optionally within `[since, until)`.
    pub async fn secret_history(
        &self,
        secret_name: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Listed<AuditEvent>> {
        let low = format!("EVENT#{}", since.map(rfc3339_ms).unwrap_or_default());
        // `~` sorts after every character of an RFC 3339 time, so "EVENT#~" bounds all events.
        let high = format!(
            "EVENT#{}",
            until.map(rfc3339_ms).unwrap_or_else(|| "~".to_owned())
        );
        let items = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", s(secret_pk(secret_name)))
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s(high))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "Query(secret history)", &err))?;
        Ok(Listed::of(items.iter().map(event_from_item)))
    }

    /// Every event of one calendar month (`YYYY-MM`) across all secrets, oldest first, optionally
    /// within `[since, until)`.
    pub async fn month_events(
        &self,
        month: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Listed<AuditEvent>> {
        let low = since.map(rfc3339_ms).unwrap_or_default();
        let high = until.map(rfc3339_ms).unwrap_or_else(|| "~".to_owned());
        let items = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(MONTH_INDEX)
            .key_condition_expression("gsi1pk = :month AND gsi1sk BETWEEN :low AND :high")
            .expression_attribute_values(":month", s(format!("MONTH#{month}")))
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s(high))
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "Query(month)", &err))?;
        Ok(Listed::of(items.iter().map(event_from_item)))
    }
}

impl DynamoAuditLog {
    /// The records of the index's `partition`, those due before `before` when given.
    async fn query_waiting_revocations(
        &self,
        partition: &str,
        before: Option<DateTime<Utc>>,
    ) -> Result<Listed<Revocation>> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_REVOCATIONS_INDEX)
            .key_condition_expression("gsi2pk = :waiting")
            .expression_attribute_values(":waiting", s(partition));
        if let Some(before) = before {
            query = query
                .key_condition_expression("gsi2pk = :waiting AND gsi2sk < :before")
                .expression_attribute_values(":before", s(rfc3339_ms(before)));
        }
        let items = query
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "Query(pending revocations)", &err))?;
        Ok(Listed::of(items.iter().map(revocation_from_item)))
    }
}

impl AuditLog for DynamoAuditLog {
    async fn step_succeeded(&self, secret_name: &str, token: &str, step: Step) -> Result<bool> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(format!("DONE#{token}#{}", step.as_str())))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(step guard)", &err))?;
        Ok(found.item().is_some())
    }

    async fn record_step_success(&self, event: &AuditEvent, token: &str) -> Result<bool> {
        let guard_sk = format!("DONE#{token}#{}", event.action);
        // A step repeated after its success (the common case of a repeated step) is told by a read, not
        // by a cancelled transaction: cancellations are for the rare race of two deliveries at once.
        // (moto restores whole tables when a transaction is cancelled, which loses the writes other
        // requests made meanwhile; DynamoDB does not.)
        let guard_exists = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(&event.secret_name)))
            .key("sk", s(&guard_sk))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(step guard)", &err))?
            .item()
            .is_some();
        if guard_exists {
            return Ok(false);
        }
        let guard: Item = [
            ("pk", s(secret_pk(&event.secret_name))),
            ("sk", s(guard_sk)),
            ("kind", s("guard")),
            ("at", s(rfc3339_ms(event.at))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.put(&self.events.name, event_item(event))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.put(&self.table, guard)?)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // A condition failed: the guard exists, so this step had already succeeded once.
            Err(err) if error_code(&err) == Some("TransactionCanceledException") => {
                let reasons = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        cancelled.cancellation_reasons().to_vec()
                    }
                    _ => Vec::new(),
                };
                let condition_failed = reasons.is_empty()
                    || reasons
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed"));
                if condition_failed {
                    Ok(false)
                } else {
                    Err(sdk_error(
                        SYSTEM,
                        "TransactWriteItems(step succeeded)",
                        &err,
                    ))
                }
            }
            Err(err) => Err(sdk_error(
                SYSTEM,
                "TransactWriteItems(step succeeded)",
                &err,
            )),
        }
    }

    async fn record(&self, event: &AuditEvent) -> Result<()> {
        self.events.add(event).await
    }

    async fn schedule_revocation(&self, revocation: &Revocation) -> Result<bool> {
        self.put_when(
            revocation_item(revocation),
            "attribute_not_exists(pk) OR #status = :status",
            &[(":status", RevocationStatus::Cancelled.as_str().to_owned())],
            "revocation",
        )
        .await
    }

    async fn revocation(
        &self,
        secret_name: &str,
        old_version_id: &str,
    ) -> Result<Option<Revocation>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(format!("REVOKE#{old_version_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(revocation)", &err))?;
        out.item()
            .map(revocation_from_item)
            .transpose()
            .map_err(|problem| unreadable("read revocation record", problem))
    }

    async fn record_deployment(
        &self,
        secret_name: &str,
        token: &str,
        target: &str,
        deployment_id: &str,
    ) -> Result<bool> {
        let item: Item = [
            ("pk", s(secret_pk(secret_name))),
            ("sk", s(deploy_sk(token, target))),
            ("kind", s("deployment")),
            ("deployment_id", s(deployment_id)),
            ("target", s(target)),
            ("at", s(rfc3339_ms(Utc::now()))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.put_once(item, "deployment").await
    }

    async fn deployment(
        &self,
        secret_name: &str,
        token: &str,
        target: &str,
    ) -> Result<Option<String>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(deploy_sk(token, target)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(deployment)", &err))?;
        Ok(out.item().and_then(|item| text(item, "deployment_id")))
    }

    async fn clear_deployment(&self, secret_name: &str, token: &str, target: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(deploy_sk(token, target)))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "DeleteItem(deployment)", &err))?;
        Ok(())
    }

    async fn pending_revocations(&self, before: DateTime<Utc>) -> Result<Listed<Revocation>> {
        self.query_waiting_revocations(PENDING_PARTITION, Some(before))
            .await
    }

    async fn revocation_tasks(&self) -> Result<Listed<Revocation>> {
        self.query_waiting_revocations(TASK_PARTITION, None).await
    }

    async fn revocations_of(&self, secret_name: &str) -> Result<Listed<Revocation>> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :revoke)")
            .expression_attribute_values(":pk", s(secret_pk(secret_name)))
            .expression_attribute_values(":revoke", s("REVOKE#"))
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "Query(revocations of a secret)", &err))?;
        Ok(Listed::of(items.iter().map(revocation_from_item)))
    }

    async fn update_revocation(&self, revocation: &Revocation, expected: Expected) -> Result<bool> {
        let mut values = vec![(":status", expected.status.as_str().to_owned())];
        let condition = match expected.claimed_at {
            Some(at) => {
                values.push((":claimed_at", rfc3339_ms(at)));
                "#status = :status AND claimed_at = :claimed_at"
            }
            None => "#status = :status AND attribute_not_exists(claimed_at)",
        };
        self.put_when(
            revocation_item(revocation),
            condition,
            &values,
            "revocation update",
        )
        .await
    }

    async fn record_key(&self, record: &KeyRecord) -> Result<bool> {
        self.put_once(key_item(record), "key record").await
    }

    async fn first_failure(
        &self,
        secret_name: &str,
        what: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let sk = format!("FAIL#{what}");
        let item: Item = [
            ("pk", s(secret_pk(secret_name))),
            ("sk", s(&sk)),
            ("kind", s("failure")),
            ("at", s(rfc3339_ms(at))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if self.put_once(item, "first failure").await? {
            return Ok(at);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(first failure)", &err))?;
        Ok(out
            .item()
            .and_then(|item| text(item, "at"))
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map_or(at, |at| at.with_timezone(&Utc)))
    }

    async fn key_record(&self, secret_name: &str, fingerprint: &str) -> Result<Option<KeyRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(secret_pk(secret_name)))
            .key("sk", s(key_sk(fingerprint)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "GetItem(key record)", &err))?;
        out.item()
            .map(key_from_item)
            .transpose()
            .map_err(|problem| unreadable("read key record", problem))
    }

    async fn record_alert_once(
        &self,
        secret_name: &str,
        kind: AlertKind,
        dedupe: &str,
    ) -> Result<bool> {
        let item: Item = [
            ("pk", s(secret_pk(secret_name))),
            ("sk", s(format!("ALERT#{kind}#{dedupe}"))),
            ("kind", s("alert")),
            ("at", s(rfc3339_ms(Utc::now()))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.put_once(item, "alert sent").await
    }

    async fn park_alert(&self, alert: &Alert, at: DateTime<Utc>) -> Result<()> {
        let id = format!(
            "ALERT#{}#{}",
            rfc3339_ms(at),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let item: Item = [
            ("pk", s(OUTBOX_PK)),
            ("sk", s(id)),
            ("kind", s("parked_alert")),
            ("at", s(rfc3339_ms(at))),
            ("secret_name", s(&alert.secret_name)),
            ("event", s(alert.event.as_str())),
            ("severity", s(alert.severity.as_str())),
            ("subject", s(&alert.subject)),
            ("text", s(&alert.text)),
            ("details", s(alert.details.to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.put_once(item, "parked alert").await.map(|_| ())
    }

    async fn parked_alerts(&self) -> Result<Listed<ParkedAlert>> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(OUTBOX_PK))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "Query(parked alerts)", &err))?;
        Ok(Listed::of(items.iter().map(parked_from_item)))
    }

    async fn unpark_alert(&self, id: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(OUTBOX_PK))
            .key("sk", s(id))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, "DeleteItem(parked alert)", &err))?;
        Ok(())
    }
}

/// The partition of parked alerts: one for the deployment, so one Query finds them all.
const OUTBOX_PK: &str = "OUTBOX";

/// A parked alert as written by `park_alert`, or what is wrong with it: it is a page that would
/// otherwise be lost, so the keeper reports it.
fn parked_from_item(item: &Item) -> std::result::Result<ParkedAlert, String> {
    let id = text(item, "sk").unwrap_or_default();
    let malformed = |field: &str| {
        format!("parked alert {OUTBOX_PK}/{id}: field {field} is missing or malformed")
    };
    let field = |name: &str| text(item, name).ok_or_else(|| malformed(name));
    let event = AlertKind::parse(&field("event")?).ok_or_else(|| malformed("event"))?;
    let severity = Severity::parse(&field("severity")?).ok_or_else(|| malformed("severity"))?;
    let parked_at = DateTime::parse_from_rfc3339(&field("at")?)
        .map_err(|_| malformed("at"))?
        .with_timezone(&Utc);
    let details = serde_json::from_str(&field("details")?).map_err(|_| malformed("details"))?;
    let alert = Alert::new(event, severity, &field("secret_name")?)
        .subject(field("subject")?)
        .text(field("text")?)
        .details(details);
    Ok(ParkedAlert {
        id,
        parked_at,
        alert,
    })
}
