//! The ports the rotation is written over. Adapters in `crate::adapters` implement them on AWS and the
//! providers' HTTP APIs; unit tests implement them in memory.
//!
//! Native `async fn` in traits: the ports are used only inside this crate, one task per invocation, so
//! their futures need no `Send` bound.
#![allow(async_fn_in_trait)]

#[cfg(test)]
pub(crate) mod fakes;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::audit::{AuditEvent, Expected, KeyHandle, Revocation, RevocationStatus};
use crate::domain::policy::Stage;
use crate::domain::provenance::KeyRecord;
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, NewKey, SecretDescription, Step};
use crate::error::{Error, Result};

/// What happened to a PutSecretValue of the pending version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The version already holds a different value: a concurrent delivery of the step won the race.
    LostRace,
}

/// Where UpdateSecretVersionStage puts a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageMove<'a> {
    /// From one version to another (AWSCURRENT also leaves AWSPREVIOUS on the version it left).
    Across { from: &'a str, to: &'a str },
    /// Off this version, onto none.
    Off(&'a str),
    /// Onto this version, from none (the label is on no version yet).
    Onto(&'a str),
}

impl<'a> StageMove<'a> {
    /// The version the label leaves, if any.
    pub fn from(self) -> Option<&'a str> {
        match self {
            StageMove::Across { from, .. } | StageMove::Off(from) => Some(from),
            StageMove::Onto(_) => None,
        }
    }

    /// The version the label goes to, if any.
    pub fn to(self) -> Option<&'a str> {
        match self {
            StageMove::Across { to, .. } | StageMove::Onto(to) => Some(to),
            StageMove::Off(_) => None,
        }
    }
}

/// Secrets Manager, as the rotation uses it.
pub trait SecretStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription>;

    /// Every secret in the account and region whose name starts with `name_prefix` (all of them without
    /// one), with what ListSecrets tells of each (paginated).
    async fn list(&self, name_prefix: Option<&str>) -> Result<Vec<SecretDescription>>;

    /// When a version was created (ListSecretVersionIds), to tell how long a rotation has been stuck.
    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<DateTime<Utc>>>;

    /// The value of the version with `stage`, or of `version_id` when given (which must carry `stage`).
    /// `None` when the version exists but holds no value yet (the placeholder rotate-secret creates).
    async fn value(
        &self,
        secret_id: &str,
        stage: Stage,
        version_id: Option<&str>,
    ) -> Result<Option<SecretString>>;

    /// The value of a version by its id alone, for one that may have lost every label (an abandoned
    /// rotation's, an old key's); `None` when there is no such version or it holds no value.
    async fn unlabelled_value(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SecretString>>;

    /// Stores `value` as version `token` labelled AWSPENDING.
    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<PutOutcome>;

    /// Stores `value` as a new version labelled `KEYROT_STAGED` (moving the label from any older
    /// version); returns the new version's id.
    async fn put_staged(&self, secret_id: &str, value: &SecretString) -> Result<String>;

    /// UpdateSecretVersionStage: puts `stage` where `movement` says.
    async fn move_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        movement: StageMove<'_>,
    ) -> Result<()>;

    async fn untag(&self, secret_id: &str, tag_keys: &[&str]) -> Result<()>;
}

/// What only an operator asks of Secrets Manager, beside what the rotation needs ([`SecretStore`]):
/// a separate trait so that the Lambdas' port stays as small as their IAM policy.
pub trait SecretAdmin {
    /// TagResource: sets (adds or overwrites) `tags`.
    async fn set_tags(&self, secret_id: &str, tags: &[(&str, String)]) -> Result<()>;

    /// RotateSecret of a secret whose rotation is configured: starts a rotation now with the rotation
    /// Lambda `rotator_arn` (passed again because some Secrets Manager stand-ins forget it), whose
    /// new pending version is `token` (so that a lost answer can be checked); returns its id.
    async fn rotate_now(
        &self,
        secret_id: &str,
        rotator_arn: Option<&str>,
        token: &str,
    ) -> Result<Option<String>>;
}

/// A key keyrot minted at a provider, as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedKey {
    /// The id a revocation names (OpenAI: the service account id).
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Where it lives (OpenAI: the project id).
    pub scope: String,
}

/// A provider that issues, validates and revokes keys.
pub trait KeyIssuer {
    /// Creates a new key for `secret` (the current version's settings). `account` is the name a provider
    /// that makes an account per key gives it (`AccountOwner::account_name`: the secret and the rotation).
    async fn mint(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        account: &str,
    ) -> Result<NewKey>;

    /// Called once the pending version holds `kept`: removes keys that other attempts of the same rotation
    /// minted and lost (a crash, a concurrent delivery), so none is left alive and unknown.
    async fn remove_leftovers(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        token: &str,
        kept: &NewKey,
    ) -> Result<()>;

    /// Puts the pending value's key into service where the provider only has it once it is set (a
    /// database role's password, set in setSecret); nothing for keys that exist from their mint. A
    /// repeat sets the same key again.
    async fn install(&self, secret_name: &str, pending: &ManagedSecret) -> Result<()>;

    /// The provider's id of a key a person created (to revoke it later), if the provider can tell.
    async fn identify(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<Option<String>>;

    /// Checks `key` at the provider. A rejected key is [`crate::Error::KeyRejected`] (final); an unreachable
    /// provider is a retryable external error.
    async fn validate(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<()>;

    /// Compares a key a person staged with the key AWSCURRENT holds, before it is adopted: a key of
    /// another account is refused ([`crate::Error::Config`] naming `KEYROT_STAGED`); differences a
    /// person should know of (a GitHub token with fewer or more scopes) come back as sentences.
    async fn compare_staged(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        staged: &SecretString,
    ) -> Result<Vec<String>>;

    /// Revokes the key `key` names. `value` is the key itself, while its old version still holds it:
    /// a provider that revokes by value (GitHub) needs it, and without it the revocation is a person's
    /// (`Manual`). Returns the status it reached.
    async fn revoke(
        &self,
        key: &KeyHandle,
        value: Option<&SecretString>,
    ) -> Result<RevocationStatus>;

    /// When the provider last saw the key used, where it tells (OpenAI's `last_used_at`).
    async fn last_used(&self, key: &KeyHandle) -> Result<Option<DateTime<Utc>>>;

    /// The keys keyrot minted at the provider for the secret's project (named like keyrot's), to find
    /// orphans. Empty for providers where keyrot mints nothing.
    async fn minted_keys(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
    ) -> Result<Vec<MintedKey>>;
}

/// Where a deployment started by keyrot stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentState {
    Building,
    Ready,
    /// ERROR, CANCELED, build_failed...: the platform's own word for it.
    Failed(String),
}

/// The deployment platforms (Vercel, Render): where services read their key from.
pub trait Target {
    /// The fingerprint of the key `target` holds now; `None` when it holds none that keyrot can
    /// recognise (absent, set by hand, or different per environment).
    async fn held_fingerprint(
        &self,
        secret_name: &str,
        target: &TargetSpec,
    ) -> Result<Option<String>>;

    /// Whether any part of `target` (any Vercel environment) holds the key with this fingerprint: what
    /// stops a revocation, where `held_fingerprint` answers `None` for environments that disagree.
    async fn holds(
        &self,
        secret_name: &str,
        target: &TargetSpec,
        fingerprint: &str,
    ) -> Result<bool> {
        Ok(self.held_fingerprint(secret_name, target).await?.as_deref() == Some(fingerprint))
    }

    /// Live deployments of `target` built before its variable last changed, so perhaps still running
    /// an older key (Vercel's previews: keyrot redeploys production only), by a name a person can
    /// find. What holds a revocation besides the variable itself; `now` is the caller's clock. Built
    /// before `minted` (when keyrot minted the key, if it did), a deployment cannot run the key.
    async fn stale_deployments(
        &self,
        _secret_name: &str,
        _target: &TargetSpec,
        _now: DateTime<Utc>,
        _minted: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Writes `key` to the target in place (never deleting the variable first: a build started in that
    /// gap would get no key), labelled with its fingerprint.
    async fn push(&self, secret_name: &str, target: &TargetSpec, key: &SecretString) -> Result<()>;

    /// Starts a deployment that picks up the current variables; returns its id.
    async fn redeploy(&self, secret_name: &str, target: &TargetSpec) -> Result<String>;

    async fn deployment_state(
        &self,
        secret_name: &str,
        target: &TargetSpec,
        deployment_id: &str,
    ) -> Result<DeploymentState>;
}

/// The audit trail and the records that make steps and revocations idempotent (one DynamoDB table).
pub trait AuditLog {
    /// Writes a step's `succeeded` event together with its DONE guard, atomically. Returns false (and
    /// writes nothing) when the guard already exists: the step had already succeeded once.
    async fn record_step_success(&self, event: &AuditEvent, token: &str) -> Result<bool>;

    /// Whether `step` of the rotation `token` has succeeded (its DONE guard exists), read
    /// consistently.
    async fn step_succeeded(&self, secret_name: &str, token: &str, step: Step) -> Result<bool>;

    /// Writes one event; writing the same event again changes nothing.
    async fn record(&self, event: &AuditEvent) -> Result<()>;

    /// Writes the revocation record unless one stands for that version. A cancelled record (its key went
    /// back into service, then out again) does not stand and is replaced. Returns whether it wrote.
    async fn schedule_revocation(&self, revocation: &Revocation) -> Result<bool>;

    async fn revocation(
        &self,
        secret_name: &str,
        old_version_id: &str,
    ) -> Result<Option<Revocation>>;

    /// Records the deployment started for `token` on `target` unless one is recorded; returns whether it wrote.
    async fn record_deployment(
        &self,
        secret_name: &str,
        token: &str,
        target: &str,
        deployment_id: &str,
    ) -> Result<bool>;

    /// The deployment recorded for `token` on `target`.
    async fn deployment(
        &self,
        secret_name: &str,
        token: &str,
        target: &str,
    ) -> Result<Option<String>>;

    /// Forgets the deployment of `token` on `target` (after a rollback, a retried setSecret redeploys).
    async fn clear_deployment(&self, secret_name: &str, token: &str, target: &str) -> Result<()>;

    /// Pending revocations whose grace ends before `before` (the sparse index), soonest first.
    async fn pending_revocations(&self, before: DateTime<Utc>) -> Result<Listed<Revocation>>;

    /// Every revocation record of one secret, whatever its status.
    async fn revocations_of(&self, secret_name: &str) -> Result<Listed<Revocation>>;

    /// Every revocation left to a person (`manual`) that nobody has recorded as done: the open tasks.
    async fn revocation_tasks(&self) -> Result<Listed<Revocation>>;

    /// Rewrites a revocation record (status, attempts, postponements, due time) whose status is still
    /// `expected`. Returns false, writing nothing, when it is not: a rollback, a revocation or another
    /// pass settled or claimed it since it was read. Claiming (pending to revoking) before calling the
    /// provider is what keeps a rollback from taking back a key that is being revoked.
    async fn update_revocation(&self, revocation: &Revocation, expected: Expected) -> Result<bool>;

    /// Records how a key became its secret's key, unless a record for that key stands (the first
    /// word on a key is the one that counts). Returns whether it wrote.
    async fn record_key(&self, record: &KeyRecord) -> Result<bool>;

    /// The record of the key with `fingerprint` among `secret_name`'s keys.
    async fn key_record(&self, secret_name: &str, fingerprint: &str) -> Result<Option<KeyRecord>>;

    /// When `what` (a rotation's step, `<token>#<step>`) first failed: records `at` unless a first
    /// failure stands, and returns the one that stands.
    async fn first_failure(
        &self,
        secret_name: &str,
        what: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;

    /// Records that the alert `kind` was sent for `dedupe` (a date, a rotation, a key id); returns
    /// false when it already was, so that an alert goes out once.
    async fn record_alert_once(
        &self,
        secret_name: &str,
        kind: AlertKind,
        dedupe: &str,
    ) -> Result<bool>;

    /// Keeps a critical alert whose Publish failed, for the grace keeper to deliver on its next pass.
    async fn park_alert(&self, alert: &Alert, at: DateTime<Utc>) -> Result<()>;

    /// The alerts parked and not yet delivered, oldest first.
    async fn parked_alerts(&self) -> Result<Listed<ParkedAlert>>;

    /// Forgets a parked alert once it was delivered.
    async fn unpark_alert(&self, id: &str) -> Result<()>;
}

/// Stored records as listed: those that could be read, and what was wrong with each of the others
/// (named by its key), so that a malformed record is reported, never skipped in silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<String>,
}

impl<T> Listed<T> {
    /// Sorts each parse into the readable items and the problems.
    pub fn of(parsed: impl IntoIterator<Item = std::result::Result<T, String>>) -> Self {
        let mut listed = Listed {
            items: Vec::new(),
            unreadable: Vec::new(),
        };
        for one in parsed {
            match one {
                Ok(item) => listed.items.push(item),
                Err(problem) => listed.unreadable.push(problem),
            }
        }
        listed
    }

    /// The items, or an error naming every unreadable record: for a decision that must not be made on
    /// part of the records.
    pub fn complete(self, secret_name: &str, what: &str) -> Result<Vec<T>> {
        if self.unreadable.is_empty() {
            return Ok(self.items);
        }
        Err(Error::config(
            secret_name,
            what,
            format!(
                "include records keyrot cannot read ({})",
                self.unreadable.join("; ")
            ),
            "repair or remove those items in the state table (docs/tables.md); nothing was changed",
        ))
    }

    /// The items, after handing each problem to `report`.
    pub fn reporting(self, mut report: impl FnMut(String)) -> Vec<T> {
        self.unreadable.into_iter().for_each(&mut report);
        self.items
    }
}

/// A critical alert whose Publish failed, waiting for its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedAlert {
    /// Its key in the state table.
    pub id: String,
    pub parked_at: DateTime<Utc>,
    pub alert: Alert,
}

/// Reading the audit trail back, which only the operator CLI does.
pub trait AuditHistory {
    /// The events of one secret at or after `since` (all of them without it), newest first.
    async fn history(
        &self,
        secret_name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Listed<AuditEvent>>;
}

/// What an alert is about: its `event` attribute, which subscriptions filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    RotationSucceeded,
    RotationFailed,
    RotationRolledBack,
    RollbackFailed,
    KeyNeeded,
    KeyRevoked,
    RevocationPostponed,
    RevocationFailed,
    RotationUpcoming,
    RotationOverdue,
    RotationStuck,
    OrphanKey,
    /// An old key a person must revoke: repeated daily until `keyrot revoked` records it.
    RevocationTask,
}

impl AlertKind {
    const ALL: [AlertKind; 13] = [
        AlertKind::RotationSucceeded,
        AlertKind::RotationFailed,
        AlertKind::RotationRolledBack,
        AlertKind::RollbackFailed,
        AlertKind::KeyNeeded,
        AlertKind::KeyRevoked,
        AlertKind::RevocationPostponed,
        AlertKind::RevocationFailed,
        AlertKind::RotationUpcoming,
        AlertKind::RotationOverdue,
        AlertKind::RotationStuck,
        AlertKind::OrphanKey,
        AlertKind::RevocationTask,
    ];

    pub fn parse(text: &str) -> Option<AlertKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RotationSucceeded => "rotation_succeeded",
            AlertKind::RotationFailed => "rotation_failed",
            AlertKind::RotationRolledBack => "rotation_rolled_back",
            AlertKind::RollbackFailed => "rollback_failed",
            AlertKind::KeyNeeded => "key_needed",
            AlertKind::KeyRevoked => "key_revoked",
            AlertKind::RevocationPostponed => "revocation_postponed",
            AlertKind::RevocationFailed => "revocation_failed",
            AlertKind::RotationUpcoming => "rotation_upcoming",
            AlertKind::RotationOverdue => "rotation_overdue",
            AlertKind::RotationStuck => "rotation_stuck",
            AlertKind::OrphanKey => "orphan_key",
            AlertKind::RevocationTask => "revocation_task",
        }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and subscriptions compare kinds with their published names.
impl PartialEq<&str> for AlertKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An alert to people, through SNS.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub event: AlertKind,
    pub severity: Severity,
    pub secret_name: String,
    /// A short line; the SNS adapter cuts it to what SNS accepts.
    pub subject: String,
    /// The human text (`default` and `email` bodies); keys only as `sk-...x7K2`.
    pub text: String,
    /// The machine body (`sqs`, `lambda`, `https`).
    pub details: serde_json::Value,
}

impl Alert {
    /// An alert of `kind` about `secret_name`, with no subject, text or details yet.
    pub fn new(kind: AlertKind, severity: Severity, secret_name: &str) -> Alert {
        Alert {
            event: kind,
            severity,
            secret_name: secret_name.to_owned(),
            subject: String::new(),
            text: String::new(),
            details: serde_json::Value::Null,
        }
    }

    pub fn subject(mut self, subject: String) -> Self {
        self.subject = subject;
        self
    }

    pub fn text(mut self, text: String) -> Self {
        self.text = text;
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|severity| severity.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

pub trait Alerts {
    async fn send(&self, alert: &Alert) -> Result<()>;
}

pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// A metric keyrot counts: an alarm (or the operator) acts on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    AuditWriteFailed,
    AlertPublishFailed,
    DaysSinceRotation,
    Revoked,
    Postponed,
    RevocationFailed,
    Overdue,
    Stuck,
    Orphans,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::AuditWriteFailed => "AuditWriteFailed",
            Metric::AlertPublishFailed => "AlertPublishFailed",
            Metric::DaysSinceRotation => "DaysSinceRotation",
            Metric::Revoked => "Revoked",
            Metric::Postponed => "Postponed",
            Metric::RevocationFailed => "RevocationFailed",
            Metric::Overdue => "Overdue",
            Metric::Stuck => "Stuck",
            Metric::Orphans => "Orphans",
        }
    }
}

/// Metrics, as CloudWatch sees them. Writing one never fails the caller.
pub trait Metrics {
    /// Counts `value` of `metric` for one secret.
    fn count(&self, metric: Metric, secret: &str, value: f64);

    /// A per-secret value in `unit` (DaysSinceRotation in days).
    fn gauge(&self, metric: Metric, unit: &str, secret: &str, value: f64);

    /// Fleet-wide counts, one line for the whole pass.
    fn counts(&self, metrics: &[(Metric, f64)]);
}

/// One choice of adapter for every port: the AWS adapters in production (`crate::wiring::Aws`), the
/// in-memory fakes in unit tests. [`Rotator`](crate::rotation::Rotator),
/// [`GraceKeeper`](crate::keeper::GraceKeeper) and [`Operator`](crate::operator::Operator) are generic
/// over one family instead of over six types each.
pub trait Family {
    type Store: SecretStore;
    type Issuer: KeyIssuer;
    type Targets: Target;
    type Audit: AuditLog;
    type Alerts: Alerts;
    type Metrics: Metrics;
    type Clock: Clock;
}

/// The ports of one family, built once per process and shared by everything that acts.
pub struct Ports<F: Family> {
    pub store: F::Store,
    pub issuer: F::Issuer,
    pub targets: F::Targets,
    pub audit: F::Audit,
    pub alerts: F::Alerts,
    pub metrics: F::Metrics,
    pub clock: F::Clock,
}
